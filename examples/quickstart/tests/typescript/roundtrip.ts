// Runs the generated client against a running quick start (BASE_URL) through
// @jararaca/core's axios backend and case interceptors, and checks every value comes back.
import axios from "axios";
import { createAxiosHttpBackend, setupAxiosCasesTransformerInterceptors } from "@jararaca/core";
import { TasksController } from "./tasks.js";
import type { Paginated, Task } from "./tasks.js";

// Node's globals, declared here so the check needs no @types/node.
declare const process: { env: { [key: string]: string | undefined }; exit(code: number): never };

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Error("round trip failed: " + what);
  }
}

async function main(): Promise<void> {
  const baseURL = process.env["BASE_URL"];
  if (baseURL === undefined) {
    throw new Error("BASE_URL is not set");
  }
  const http = axios.create({ baseURL });
  setupAxiosCasesTransformerInterceptors(http);
  const tasks = new TasksController(createAxiosHttpBackend(http));

  const created: Task = await tasks.createTask({ title: "b: write the client", description: "in TypeScript" });
  check(created.title === "b: write the client", "created title");
  check(created.description === "in TypeScript", "created description");
  check(created.done === false, "created done");
  check(typeof created.createdAt === "string" && created.createdAt === created.updatedAt, "createdAt is camelCase");
  await tasks.createTask({ title: "a: read the docs" });
  await tasks.createTask({ title: "c: ship it", description: null });

  const page: Paginated<Task> = await tasks.listTasks({ page: 0, pageSize: 2, sortModels: [{ field: "title", direction: "desc" }] });
  check(page.items.length === 2 && page.total === 2, "a page of 2");
  check(page.unpaginatedTotal === 3 && page.totalPages === 2, "counts: " + JSON.stringify(page));
  check(page.items[0]?.title === "c: ship it" && page.items[1]?.title === "b: write the client", "sorted desc");
  const filtered = await tasks.listTasks({ filterModels: [{ field: "title", operator: "contains", value: "docs" }] });
  check(filtered.items.length === 1 && filtered.items[0]?.title === "a: read the docs", "filtered");

  const fetched = await tasks.getTask(created.id);
  check(JSON.stringify(fetched) === JSON.stringify(created), "get returns what create returned");

  const updated = await tasks.updateTask(created.id, { title: "b: client written", description: null, done: true });
  check(updated.id === created.id && updated.title === "b: client written", "updated title");
  check(updated.done === true && updated.description === null, "updated done and description");
  check((await tasks.getTask(created.id)).done === true, "the update is stored");

  await tasks.deleteTask(created.id);
  let missing = false;
  try {
    await tasks.getTask(created.id);
  } catch (error) {
    missing = axios.isAxiosError(error) && error.response?.status === 404;
  }
  check(missing, "deleted task is a 404");
  const rest = await tasks.listTasks({});
  check(rest.unpaginatedTotal === 2, "two left");
  console.log("round trip ok");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
