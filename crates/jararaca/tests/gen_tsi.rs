//! `gen-tsi` through the application CLI: writes the client, prints it, post-processes it,
//! and fails with a non-zero exit on any error.

use std::process::ExitCode;

use jararaca::Microservice;
use jararaca::http::{Controller, Json};
use jararaca::tsgen::TypeScript;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Serialize, Deserialize, JsonSchema, TS)]
struct Note {
    note_text: String,
}

#[derive(Serialize, Deserialize, JsonSchema, TS)]
#[serde(rename_all = "camelCase")]
struct CamelNote {
    note_text: String,
}

async fn add(Json(note): Json<Note>) -> Json<Note> {
    Json(note)
}

async fn add_camel(Json(note): Json<CamelNote>) -> Json<Note> {
    Json(Note {
        note_text: note.note_text,
    })
}

/// Routes marked for the client's hooks with the macro.
struct NotesController;

#[jararaca::controller("/marked")]
impl NotesController {
    #[get("/", query, infinite_query)]
    async fn list_notes(jararaca::http::Query(filter): jararaca::http::Query<Page>) -> Json<Paged> {
        Json(Paged {
            items: vec![],
            total: 0,
            page: filter.page,
        })
    }

    #[post("/", mutation)]
    async fn save_note(Json(note): Json<Note>) -> Json<Note> {
        Json(note)
    }
}

#[derive(Serialize, Deserialize, JsonSchema, TS)]
struct Page {
    #[serde(default)]
    page: u32,
    #[serde(default)]
    page_size: u32,
}

#[derive(Serialize, Deserialize, JsonSchema, TS)]
#[ts(rename = "Paginated")]
struct Paged {
    items: Vec<Note>,
    total: u32,
    page: u32,
}

/// A bus message no route mentions.
#[derive(Serialize, Deserialize, JsonSchema, TS)]
struct NoteAdded {
    note_id: u32,
}

fn service() -> Microservice {
    Microservice::new("notes")
        .controller(Controller::new("NotesController", "/notes").post("/", add))
        .with(TypeScript::new().expose::<NoteAdded>())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jararaca-gen-tsi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn gen_tsi_writes_the_client_and_runs_the_post_process_command() {
    let dir = temp_dir("write");
    let file = dir.join("client dir/notes.ts");
    let file = file.to_str().unwrap();
    let code = jararaca::cli::run_from(
        service(),
        [
            "notes",
            "gen-tsi",
            file,
            "--post-process",
            "cp {file} {file}.copy",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let ts = std::fs::read_to_string(file).unwrap();
    assert!(
        ts.contains("export class NotesController extends HttpService {"),
        "{ts}"
    );
    assert!(
        ts.contains("async add(body: Note): Promise<Note> {"),
        "{ts}"
    );
    assert!(ts.contains("  noteText: string;"), "{ts}");
    assert!(
        ts.contains("export interface NoteAdded {\n  noteId: number;\n}"),
        "{ts}"
    );
    assert_eq!(std::fs::read_to_string(format!("{file}.copy")).unwrap(), ts);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn macro_marks_become_hook_bundles() {
    let api = Microservice::new("notes")
        .controller(NotesController::controller())
        .api();
    let ts = jararaca::tsgen::generate(&api).unwrap();
    assert!(
        ts.contains("...createClassQueryHooks(NotesController, \"listNotes\"),"),
        "{ts}"
    );
    assert!(ts.contains("...createClassInfiniteQueryHooks(NotesController, { \"listNotes\": paginationModelByFirstArgPaginationFilter() }),"), "{ts}");
    assert!(
        ts.contains("...createClassMutationHooks(NotesController, \"saveNote\"),"),
        "{ts}"
    );
}

#[tokio::test]
async fn gen_tsi_fails_when_the_post_process_command_fails() {
    let dir = temp_dir("post");
    let file = dir.join("notes.ts");
    let code = jararaca::cli::run_from(
        service(),
        [
            "notes",
            "gen-tsi",
            file.to_str().unwrap(),
            "--post-process",
            "exit 3",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn gen_tsi_fails_when_a_request_field_would_not_round_trip() {
    let dir = temp_dir("camel");
    let file = dir.join("notes.ts");
    let service = Microservice::new("notes")
        .controller(Controller::new("NotesController", "/notes").post("/", add_camel))
        .with(TypeScript::new());
    let code = jararaca::cli::run_from(service, ["notes", "gen-tsi", file.to_str().unwrap()]).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(!file.exists(), "nothing is written on error");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn gen_tsi_needs_a_file_or_stdout_and_not_both_with_post_processing() {
    assert_ne!(
        jararaca::cli::run_from(service(), ["notes", "gen-tsi"]).await,
        ExitCode::SUCCESS
    );
    assert_ne!(
        jararaca::cli::run_from(
            service(),
            ["notes", "gen-tsi", "--stdout", "--post-process", "true"]
        )
        .await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        jararaca::cli::run_from(service(), ["notes", "gen-tsi", "--stdout"]).await,
        ExitCode::SUCCESS
    );
}
