import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { AxiosProvider } from "@jararaca/core";
import { SnackbarProvider } from "notistack";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { http } from "./api.ts";
import { App } from "./App.tsx";
import "./styles.css";

const queries = new QueryClient({
  defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false } },
});

const root = document.getElementById("root");
if (root === null) {
  throw new Error("index.html has no #root");
}
createRoot(root).render(
  <StrictMode>
    <SnackbarProvider>
      <AxiosProvider value={http}>
        <QueryClientProvider client={queries}>
          <App />
        </QueryClientProvider>
      </AxiosProvider>
    </SnackbarProvider>
  </StrictMode>,
);
