import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The generated client lives outside this folder (`../client/tasks.ts`, written by
// `cargo test`): its imports resolve to this folder's packages.
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: {
      "@jararaca/core": here("./node_modules/@jararaca/core"),
    },
    dedupe: ["react", "react-dom", "@tanstack/react-query", "axios"],
  },
  server: {
    fs: { allow: [here("..")] },
    // `npm run dev` talks to a service on :8000.
    proxy: {
      "/auth": "http://127.0.0.1:8000",
      "/tasks": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
  },
});
