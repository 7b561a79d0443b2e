// Log in, list, create and complete tasks, and watch the live updates the service pushes:
// `task.changed` from the HTTP handlers (applied to the list as it arrives), `task.notice`
// from the bus handlers and `tasks.summary` from the scheduled action (the activity feed).
import { WebSocketProvider, getClassBaseQueryKey } from "@jararaca/core";
import { useQueryClient } from "@tanstack/react-query";
import { isAxiosError } from "axios";
import { useCallback, useMemo, useState, type FormEvent } from "react";

import {
  TasksController,
  authController,
  tasksController,
  type Paginated,
  type PaginatedFilter,
  type Task,
  type TaskChanged,
  type TaskNotice,
  type TasksSummary,
  type TokenPair,
} from "../../client/tasks.ts";
import { applyCredentials, live, storedCredentials, webSocketUrl } from "./api.ts";

const NEWEST_FIRST: PaginatedFilter = {
  page: 0,
  pageSize: 100,
  sortModels: [{ field: "created_at", direction: "desc" }],
};

function problem(error: unknown): string {
  if (isAxiosError(error)) {
    const detail: unknown = error.response?.data?.detail;
    return typeof detail === "string" ? detail : error.message;
  }
  return String(error);
}

function isUnauthorized(error: unknown): boolean {
  return isAxiosError(error) && error.response?.status === 401;
}

export function App() {
  const queries = useQueryClient();
  const [credentials, setCredentials] = useState<TokenPair | null>(() => {
    const stored = storedCredentials();
    applyCredentials(stored);
    return stored;
  });
  const signedIn = useCallback(
    (pair: TokenPair | null) => {
      applyCredentials(pair);
      queries.clear();
      setCredentials(pair);
    },
    [queries],
  );
  if (credentials === null) {
    return <Login onSignedIn={signedIn} />;
  }
  return <Live credentials={credentials} onSignedOut={() => signedIn(null)} />;
}

function Login({ onSignedIn }: { onSignedIn: (pair: TokenPair) => void }) {
  const [username, setUsername] = useState("alice");
  const [password, setPassword] = useState("");
  const login = authController.useLogin({ onSuccess: onSignedIn });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    login.mutate({ username, password });
  };
  return (
    <main className="login">
      <h1>Tasks</h1>
      <form onSubmit={submit} data-testid="login-form">
        <label>
          User <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password{" "}
          <input name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button type="submit" disabled={login.isPending}>
          Log in
        </button>
        {login.isError && <p className="error">{problem(login.error)}</p>}
      </form>
      <p className="hint">Demo users: alice / alice-password, bob / bob-password.</p>
    </main>
  );
}

function Live({ credentials, onSignedOut }: { credentials: TokenPair; onSignedOut: () => void }) {
  // Browsers cannot set headers on a WebSocket: the token goes in the query string.
  const params = useMemo(
    () => new URLSearchParams({ access_token: credentials.accessToken }),
    [credentials.accessToken],
  );
  return (
    <WebSocketProvider url={webSocketUrl()} connectionQueryParams={params} Provider={live.WebSocketProvider}>
      <Board credentials={credentials} onSignedOut={onSignedOut} />
    </WebSocketProvider>
  );
}

type Activity = { key: string; text: string; kind: "notice" | "summary" };

function upsert(page: Paginated<Task> | undefined, changed: TaskChanged): Paginated<Task> | undefined {
  if (page === undefined) {
    return page;
  }
  const others = page.items.filter((task) => task.id !== changed.task.id);
  if (changed.change === "deleted") {
    return { ...page, items: others, total: others.length, unpaginatedTotal: page.unpaginatedTotal - 1 };
  }
  const known = others.length < page.items.length;
  const items = known
    ? page.items.map((task) => (task.id === changed.task.id ? changed.task : task))
    : [changed.task, ...page.items];
  return {
    ...page,
    items,
    total: items.length,
    unpaginatedTotal: page.unpaginatedTotal + (known ? 0 : 1),
  };
}

function Board({ credentials, onSignedOut }: { credentials: TokenPair; onSignedOut: () => void }) {
  const queries = useQueryClient();
  const { connectionStatus } = live.useWebSocket();
  const me = authController.useMe();
  const tasks = tasksController.useListTasks(NEWEST_FIRST);
  const create = tasksController.useCreateTask();
  const complete = tasksController.useCompleteTask();
  const logout = authController.useLogout({ onSettled: onSignedOut });
  const [title, setTitle] = useState("");
  const [activity, setActivity] = useState<Array<Activity>>([]);

  const onChanged = useCallback(
    (changed: TaskChanged) => {
      queries.setQueriesData<Paginated<Task>>(
        { queryKey: getClassBaseQueryKey(TasksController, "listTasks") },
        (page) => upsert(page, changed),
      );
    },
    [queries],
  );
  const onNotice = useCallback((notice: TaskNotice) => {
    const text = `${notice.handledBy} handled ${notice.event} for "${notice.title}"`;
    setActivity((items) => [{ key: `${notice.event}-${notice.taskId}`, text, kind: "notice" as const }, ...items].slice(0, 20));
  }, []);
  const onSummary = useCallback((summary: TasksSummary) => {
    const at = new Date(summary.at).toLocaleTimeString();
    const text = `summary at ${at}: ${summary.open} open, ${summary.done} done`;
    setActivity((items) => [{ key: `summary-${summary.at}`, text, kind: "summary" as const }, ...items].slice(0, 20));
  }, []);
  live.useWebSocketEvent("task.changed", onChanged);
  live.useWebSocketEvent("task.notice", onNotice);
  live.useWebSocketEvent("tasks.summary", onSummary);

  const failure = [me.error, tasks.error, create.error, complete.error].find((e) => e !== null && e !== undefined);
  if (failure !== undefined && isUnauthorized(failure)) {
    return (
      <main>
        <p className="error" data-testid="session-ended">
          Your session ended: {problem(failure)}
        </p>
        <button onClick={onSignedOut}>Log in again</button>
      </main>
    );
  }

  const add = (event: FormEvent) => {
    event.preventDefault();
    if (title.trim() === "") {
      return;
    }
    create.mutate({ title }, { onSuccess: () => setTitle("") });
  };

  return (
    <main>
      <header>
        <h1>Tasks</h1>
        <span data-testid="user">{me.data?.username ?? "…"}</span>
        <span className={`status ${connectionStatus}`} data-testid="ws-status">
          {connectionStatus}
        </span>
        <button
          data-testid="logout"
          onClick={() => logout.mutate({ refreshToken: credentials.refreshToken })}
          disabled={logout.isPending}
        >
          Log out
        </button>
      </header>
      <form onSubmit={add} className="new-task">
        <input
          data-testid="new-title"
          placeholder="What needs doing?"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
        />
        <button type="submit" data-testid="add" disabled={create.isPending}>
          Add
        </button>
      </form>
      {failure !== undefined && <p className="error">{problem(failure)}</p>}
      <section className="columns">
        <ul className="tasks" data-testid="tasks">
          {tasks.data?.items.map((task) => (
            <li key={task.id} data-testid="task" data-title={task.title} data-done={String(task.done)}>
              <span className={task.done ? "done" : ""}>{task.title}</span>
              {task.done ? (
                <span className="badge">done</span>
              ) : (
                <button data-testid="complete" onClick={() => complete.mutate(task.id)}>
                  Complete
                </button>
              )}
            </li>
          ))}
          {tasks.data?.items.length === 0 && <li className="empty">No tasks yet.</li>}
        </ul>
        <ol className="activity" data-testid="activity">
          {activity.map((item) => (
            <li key={item.key} className={item.kind} data-kind={item.kind}>
              {item.text}
            </li>
          ))}
        </ol>
      </section>
    </main>
  );
}
