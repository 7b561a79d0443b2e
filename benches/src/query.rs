//! The `query` workload: a filtered, sorted page with its total from a million-row PostgreSQL
//! table, through jararaca-query's `QueryOperations` and through the same SQL written by hand
//! with sqlx; then keyset pages near the start and deep in the table.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jararaca_query::{
    Column, ColumnType, CountStrategy, Db, Direction, Entity, Fields, FilterValue, Paginated,
    PaginatedFilter, PaginationConfig, QueryOperations,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::harness::{self, BoxError, median};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA: &str = "jararaca_bench";
const ROWS: i64 = 1_000_000;
/// The index that serves the ordering (`priority DESC, id DESC`), the range filter on
/// `priority`, the count under that filter (index-only) and the keyset comparison.
const INDEX: &str = "bench_items_priority_id";

const PAGE_SIZE: u32 = 20;
/// The filtered page: `priority >= 900` (a tenth of the rows), page 500 (0-based).
const FILTER_MIN_PRIORITY: i64 = 900;
const FILTER_PAGE: u32 = 500;
/// The deep page of the keyset comparison, 1-based as a reader counts pages.
const DEEP_PAGE: u32 = 10_000;

/// Rows `1..=ROWS`; `priority` spreads over 0..1000 with about a thousand rows each.
const POPULATE: &str = "
CREATE TABLE bench_items (
    id uuid PRIMARY KEY,
    title text NOT NULL,
    priority bigint NOT NULL,
    score double precision NOT NULL,
    done boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO bench_items (id, title, priority, score, done, created_at, updated_at)
SELECT md5('bench-' || i)::uuid,
       'item ' || i,
       (i * 7919) % 1000,
       ((i % 10007) / 10.0)::double precision,
       i % 3 = 0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1::bigint, 1000000::bigint) AS i;
CREATE INDEX bench_items_priority_id ON bench_items (priority, id);
";

/// The hand-written page: the SQL `QueryOperations` runs for the same filter.
const SQLX_PAGE: &str = "SELECT id, title, priority, score, done, created_at, updated_at \
     FROM bench_items WHERE priority >= $1 \
     ORDER BY priority DESC, id DESC LIMIT $2 OFFSET $3";
/// The hand-written total: a separate count, as `CountStrategy::Separate` does.
const SQLX_COUNT: &str = "SELECT count(*) FROM bench_items WHERE priority >= $1";

/// A row of the benchmark table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub(crate) struct BenchItem {
    id: Uuid,
    title: String,
    priority: i64,
    score: f64,
    done: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Entity for BenchItem {
    const TABLE: &'static str = "bench_items";
    const COLUMNS: &'static [Column] = &[
        Column::new("id", ColumnType::Uuid),
        Column::new("title", ColumnType::Text),
        Column::new("priority", ColumnType::Int),
        Column::new("score", ColumnType::Float),
        Column::new("done", ColumnType::Bool),
        Column::new("created_at", ColumnType::DateTime),
        Column::new("updated_at", ColumnType::DateTime),
    ];
    const TIMESTAMPS: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
}

/// Options of the `query` workload.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    runs: usize,
    iterations: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            runs: 5,
            iterations: 20,
        };
        for (flag, number) in harness::numeric_flags(args)? {
            let number = usize::try_from(number).unwrap_or(usize::MAX);
            match flag {
                "--runs" => options.runs = number.max(3),
                "--iterations" => options.iterations = number.max(1),
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(options)
    }
}

/// Runs the workload and prints the ratio last.
pub(crate) fn run(options: &Options) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    harness::report("query", runtime, bench(options))
}

/// `url` with its password, if any, masked, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

async fn connect(url: &str) -> Result<PgPool, BoxError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot connect to PostgreSQL at {}: {e} (set DATABASE_URL to a reachable server)",
            redacted(url)
        )
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| unreachable(&e))?
        .options([("search_path", SCHEMA)]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(pool)
}

/// Makes sure the table holds exactly `ROWS` rows and has its index; builds it otherwise.
async fn prepare(pool: &PgPool) -> Result<String, BoxError> {
    sqlx::query(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA}"
    )))
    .execute(pool)
    .await?;
    let exists: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT to_regclass('{SCHEMA}.bench_items')::text"
    )))
    .fetch_one(pool)
    .await?;
    if exists.is_some() {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_items")
            .fetch_one(pool)
            .await?;
        let indexed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
        )
        .bind(SCHEMA)
        .bind(INDEX)
        .fetch_one(pool)
        .await?;
        if rows == ROWS && indexed == 1 {
            return Ok("reused".into());
        }
        eprintln!("query: {SCHEMA}.bench_items has {rows} rows (index: {indexed}); rebuilding it");
    }
    let started = Instant::now();
    // One transaction: an interrupted build leaves no half-filled table to be mistaken for
    // a complete one.
    let mut tx = pool.begin().await?;
    sqlx::query("DROP TABLE IF EXISTS bench_items")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(POPULATE).execute(&mut *tx).await?;
    tx.commit().await?;
    // Fresh statistics and a visibility map, so counts can be index-only scans.
    sqlx::query("VACUUM ANALYZE bench_items")
        .execute(pool)
        .await?;
    Ok(format!("built in {:.1} s", started.elapsed().as_secs_f64()))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `1,000,000`
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The filtered page through `QueryOperations`.
async fn ours(
    listing: &QueryOperations<BenchItem>,
    filter: &PaginatedFilter,
) -> Result<Paginated<BenchItem>, BoxError> {
    Ok(listing.query(filter).await?)
}

/// The same page written with sqlx.
async fn by_hand(pool: &PgPool, page: u32) -> Result<Paginated<BenchItem>, BoxError> {
    let offset = i64::from(page) * i64::from(PAGE_SIZE);
    let items: Vec<BenchItem> = sqlx::query_as(SQLX_PAGE)
        .bind(FILTER_MIN_PRIORITY)
        .bind(i64::from(PAGE_SIZE))
        .bind(offset)
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query_scalar(SQLX_COUNT)
        .bind(FILTER_MIN_PRIORITY)
        .fetch_one(pool)
        .await?;
    Ok(Paginated::new(items, total, PAGE_SIZE))
}

/// The mean time of one call of `f` over `iterations` calls.
async fn time<F, Fut, T>(iterations: usize, mut f: F) -> Result<Duration, BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BoxError>>,
{
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f().await?);
    }
    Ok(started.elapsed() / iterations as u32)
}

fn ids(items: &[BenchItem]) -> Vec<Uuid> {
    items.iter().map(|i| i.id).collect()
}

async fn bench(options: &Options) -> Result<f64, BoxError> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let pool = connect(&url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    let state = prepare(&pool).await?;
    println!(
        "query: PostgreSQL {version}, {} rows in {SCHEMA}.bench_items ({state}), index ({INDEX}) on (priority, id)",
        grouped(ROWS)
    );

    let db = Db::from_postgres(pool.clone());
    // Fixed bounds, so the environment cannot change what is measured.
    let config = PaginationConfig::default();
    let listing = QueryOperations::<BenchItem>::new(Fields::of::<BenchItem>())
        .pagination(config)
        .on(db.session());
    let filter = PaginatedFilter::page(FILTER_PAGE, PAGE_SIZE)
        .sort("priority", Direction::Desc)
        .filter(
            "priority",
            ">=",
            FilterValue::One(FILTER_MIN_PRIORITY.to_string()),
        );

    // Both sides must return the same page before their times mean anything.
    let a = ours(&listing, &filter).await?;
    let b = by_hand(&pool, FILTER_PAGE).await?;
    if ids(&a.items) != ids(&b.items) || a.unpaginated_total != b.unpaginated_total {
        return Err("QueryOperations and the hand-written SQL disagree on the page".into());
    }
    if a.items.len() != PAGE_SIZE as usize {
        return Err(format!("page {FILTER_PAGE} is not full: {} items", a.items.len()).into());
    }
    println!(
        "page with total: priority >= {FILTER_MIN_PRIORITY} ({} rows), sort priority desc, page {FILTER_PAGE} of {PAGE_SIZE} (offset {}), separate count(*); {} queries each per run, alternating query by query, {} runs",
        grouped(a.unpaginated_total),
        grouped(i64::from(FILTER_PAGE) * i64::from(PAGE_SIZE)),
        options.iterations,
        options.runs
    );

    // Warm both paths (plans, statement caches, buffers).
    time(options.iterations, || ours(&listing, &filter)).await?;
    time(options.iterations, || by_hand(&pool, FILTER_PAGE)).await?;
    let mut jararaca_ms = Vec::new();
    let mut sqlx_ms = Vec::new();
    for run in 0..options.runs {
        // Query by query, alternating which goes first, so load from the rest of the machine
        // lands on both sides alike rather than on whichever block it happens to hit.
        let (mut j, mut s) = (Duration::ZERO, Duration::ZERO);
        for i in 0..options.iterations {
            if (run + i) % 2 == 0 {
                j += time(1, || ours(&listing, &filter)).await?;
                s += time(1, || by_hand(&pool, FILTER_PAGE)).await?;
            } else {
                s += time(1, || by_hand(&pool, FILTER_PAGE)).await?;
                j += time(1, || ours(&listing, &filter)).await?;
            }
        }
        let (j, s) = (j / options.iterations as u32, s / options.iterations as u32);
        println!(
            "run {}: jararaca {:>8.3} ms/page   sqlx {:>8.3} ms/page",
            run + 1,
            millis(j),
            millis(s)
        );
        jararaca_ms.push(millis(j));
        sqlx_ms.push(millis(s));
    }
    let jararaca_median = median(&mut jararaca_ms);
    let sqlx_median = median(&mut sqlx_ms);
    println!("median: jararaca {jararaca_median:.3} ms, sqlx {sqlx_median:.3} ms");

    keyset_and_offset(&listing, options).await?;
    Ok(sqlx_median / jararaca_median)
}

/// Keyset pages at page 1 and page `DEEP_PAGE`, and offset pages at the same depths, all
/// ordered by `priority DESC, id DESC` over the whole table without a count.
async fn keyset_and_offset(
    listing: &QueryOperations<BenchItem>,
    options: &Options,
) -> Result<(), BoxError> {
    let listing = listing.clone().count(CountStrategy::None);
    let keyset_filter = PaginatedFilter::page(0, PAGE_SIZE).sort("priority", Direction::Desc);

    // Reach the deep page's cursor the way a client does: by following `next_cursor`.
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    for page in 1..DEEP_PAGE {
        let keyset = listing
            .query_keyset(&keyset_filter, cursor.as_deref())
            .await?;
        cursor = Some(
            keyset
                .next_cursor
                .ok_or_else(|| format!("the walk ended at page {page}"))?,
        );
    }
    let walk = started.elapsed();
    let deep_cursor = cursor.ok_or("no cursor for the deep page")?;

    let deep_offset =
        PaginatedFilter::page(DEEP_PAGE - 1, PAGE_SIZE).sort("priority", Direction::Desc);
    let first_offset = PaginatedFilter::page(0, PAGE_SIZE).sort("priority", Direction::Desc);
    let keyset_deep = listing
        .query_keyset(&keyset_filter, Some(&deep_cursor))
        .await?;
    let offset_deep = listing.query(&deep_offset).await?;
    if ids(&keyset_deep.items) != ids(&offset_deep.items) {
        return Err(format!("keyset and offset disagree on page {DEEP_PAGE}").into());
    }

    let iterations = options.iterations;
    let mut keyset_first = Vec::new();
    let mut keyset_deep_ms = Vec::new();
    let mut offset_first = Vec::new();
    let mut offset_deep_ms = Vec::new();
    for _ in 0..options.runs {
        keyset_first.push(millis(
            time(iterations, || async {
                Ok(listing.query_keyset(&keyset_filter, None).await?)
            })
            .await?,
        ));
        keyset_deep_ms.push(millis(
            time(iterations, || async {
                Ok(listing
                    .query_keyset(&keyset_filter, Some(&deep_cursor))
                    .await?)
            })
            .await?,
        ));
        offset_first.push(millis(
            time(iterations, || async {
                Ok(listing.query(&first_offset).await?)
            })
            .await?,
        ));
        offset_deep_ms.push(millis(
            time(iterations, || async {
                Ok(listing.query(&deep_offset).await?)
            })
            .await?,
        ));
    }
    println!(
        "keyset (query_keyset, sort priority desc, {PAGE_SIZE} per page, whole table, no count): page 1 {:.3} ms, page {} {:.3} ms \
         (its cursor reached by walking next_cursor through {} pages: {:.2} s, {:.3} ms/page)",
        median(&mut keyset_first),
        grouped(i64::from(DEEP_PAGE)),
        median(&mut keyset_deep_ms),
        grouped(i64::from(DEEP_PAGE - 1)),
        walk.as_secs_f64(),
        millis(walk) / f64::from(DEEP_PAGE - 1),
    );
    println!(
        "offset for context (query, same ordering, no count): page 1 {:.3} ms, page {} (offset {}) {:.3} ms",
        median(&mut offset_first),
        grouped(i64::from(DEEP_PAGE)),
        grouped(i64::from(DEEP_PAGE - 1) * i64::from(PAGE_SIZE)),
        median(&mut offset_deep_ms),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("postgres://bench:s3cret@db:5432/test?sslmode=disable"),
            "postgres://bench:***@db:5432/test?sslmode=disable"
        );
        assert_eq!(redacted(DEFAULT_URL), DEFAULT_URL);
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(-1234), "-1,234");
    }
}
