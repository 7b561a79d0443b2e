// Uses the fixture's client as an application would: the classes through the axios backend,
// every hook bundle, the enums and the WebSocket message map.
import axios from "axios";
import {
  createAxiosHttpBackend,
  createWebSocketContext,
  setupAxiosCasesTransformerInterceptors,
} from "@jararaca/core";
import {
  Priority,
  ProjectsController,
  Status,
  TasksController,
  projectsController,
  tasksController,
} from "./fixture.ts";
import type { CreateTask, Paginated, Task, WebSocketMessageMap } from "./fixture.ts";

const http = axios.create({ baseURL: "http://localhost:8000" });
setupAxiosCasesTransformerInterceptors(http);
const backend = createAxiosHttpBackend(http);

export async function calls(): Promise<string> {
  const tasks = new TasksController(backend);
  const projects = new ProjectsController(backend);
  const body: CreateTask = { title: "write", priority: Priority.HIGH };
  const created: Task = await tasks.createTask(body, "tenant");
  await tasks.createTask({ title: "t", priority: 2, status: Status.IN_PROGRESS, dueOn: null }, "tenant", 3);
  const page: Paginated<Task> = await tasks.listTasks({ page: 0, pageSize: 10, sortModels: [{ field: "title", direction: "asc" }] }, "tenant");
  await tasks.searchTasks({});
  await tasks.searchTasks({ text: "x", tags: ["a"], default: true });
  const revision = await tasks.getTask(created.id);
  await tasks.getTask(created.id, "request-1");
  await tasks.linkTasks(1, 2);
  await tasks.delete(revision.value.id);
  const settings = await tasks.updateSettings({
    extra: { any: [1, "two", null] },
    labels: { team: "core" },
    shape: { circle: { radius: 2 } },
    trigger: { kind: "scheduled", cronExpression: "0 * * * *" },
    pageSize: 5,
  });
  await tasks.updateSettings({ ...settings, shape: "empty", trigger: { kind: "manual" } });
  const category = await projects.getClass("math");
  const member: string = await projects.getMember(1, "ana");
  const line: string = page.items[0]?.line_1 ?? category.name;
  return member + line + page.unpaginatedTotal + page.totalPages;
}

export function useScreen(): number {
  const list = tasksController.useListTasks([{ page: 0, pageSize: 10 }, "tenant"]);
  const infinite = tasksController.useListTasksInfinite([{ pageSize: 10 }, "tenant"]);
  const one = tasksController.useGetTask([1]);
  const search = tasksController.useSearchTasks({ text: "x" });
  const create = tasksController.useCreateTask();
  const remove = tasksController.useDelete();
  const klass = projectsController.queries.useGetClass("math");
  const renameClass = projectsController.mutations.useGetClass();
  remove.mutate(1);
  return (
    (list.data?.total ?? 0) +
    (infinite.data?.pages.length ?? 0) +
    (one.data?.version ?? 0) +
    (search.data?.length ?? 0) +
    (create.isPending ? 1 : 0) +
    (klass.data?.children.length ?? 0) +
    (renameClass.isIdle ? 1 : 0)
  );
}

const socket = createWebSocketContext<WebSocketMessageMap>();

export function useLiveUpdates(onChange: (id: number, status: Status) => void): void {
  socket.useWebSocketEvent("task.changed", (message) => onChange(message.taskId, message.status));
  socket.useWebSocketEvent("notice", (notice) => console.log(notice.text));
}
