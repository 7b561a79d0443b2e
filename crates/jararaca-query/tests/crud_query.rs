//! CRUD, every filter operator, sorting, paging arithmetic, keyset paging and hostile input,
//! on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use chrono::{Duration, NaiveDate, Utc};
use common::Task;
use jararaca_query::{
    CountStrategy, CrudOperations, Db, Direction, Fields, FilterValue, Paginated, PaginatedFilter,
    QueryError, QueryOperations, Sql,
};
use uuid::Uuid;

on_every_backend!(
    crud,
    every_filter_operator,
    sorting_and_paging,
    count_strategies_agree,
    keyset_paging,
    hostile_fields_and_values,
    custom_injectors_and_date_order,
    values_a_column_cannot_hold,
);

fn crud_ops(db: &Db) -> CrudOperations<Task> {
    CrudOperations::on(db.session())
}

fn listing(db: &Db) -> QueryOperations<Task> {
    QueryOperations::new(Fields::of::<Task>()).on(db.session())
}

fn one(s: &str) -> FilterValue {
    FilterValue::One(s.to_string())
}

fn many(values: &[&str]) -> FilterValue {
    FilterValue::Many(values.iter().map(|s| s.to_string()).collect())
}

fn titles(page: &Paginated<Task>) -> Vec<String> {
    page.items.iter().map(|t| t.title.clone()).collect()
}

async fn count_rows(db: &Db, table: &'static str) -> i64 {
    let mut sql = Sql::new();
    sql.push("SELECT count(*) FROM ").ident(table);
    db.session().fetch_i64(&sql).await.unwrap()
}

async fn crud(db: Db) {
    let ops = crud_ops(&db);
    let before = Utc::now() - Duration::seconds(1);
    let mut task = Task::new("write docs", 3);
    task.notes = Some("with examples".into());
    task.due = NaiveDate::from_ymd_opt(2024, 5, 1);
    let created = ops.create(&task).await.unwrap();
    assert_eq!(created.id, task.id);
    assert_eq!(created.notes.as_deref(), Some("with examples"));
    assert_eq!(created.meta, serde_json::json!({"tags": ["write docs"]}));
    assert!(created.created_at > before, "create sets created_at");
    assert_eq!(created.created_at, created.updated_at);

    assert_eq!(ops.get(task.id).await.unwrap(), created);
    let missing = Uuid::new_v4();
    let err = ops.get(missing).await.unwrap_err();
    assert!(matches!(err, QueryError::NotFound { id, .. } if id == missing));
    assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
    assert!(ops.find(missing).await.unwrap().is_none());

    let other = ops.create(&Task::new("fix bug", 1)).await.unwrap();
    let mut many = ops
        .get_many(&[task.id, missing, other.id, task.id])
        .await
        .unwrap();
    many.sort_by(|a, b| a.title.cmp(&b.title));
    assert_eq!(many, [other.clone(), created.clone()]);
    assert!(ops.get_many(&[]).await.unwrap().is_empty());

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut changed = created.clone();
    changed.title = "write better docs".into();
    changed.notes = None;
    changed.created_at = Utc::now() + Duration::days(365);
    let updated = ops.update(&changed).await.unwrap();
    assert_eq!(updated.title, "write better docs");
    assert_eq!(updated.notes, None);
    assert_eq!(
        updated.created_at, created.created_at,
        "created_at never changes"
    );
    assert!(
        updated.updated_at > created.updated_at,
        "update refreshes updated_at"
    );
    assert_eq!(ops.get(task.id).await.unwrap(), updated);
    assert!(matches!(
        ops.update_by_id(missing, &changed).await.unwrap_err(),
        QueryError::NotFound { .. }
    ));
    let renamed = ops
        .update_by_id(other.id, &Task::new("fix the bug", 7))
        .await
        .unwrap();
    assert_eq!((renamed.id, renamed.priority), (other.id, 7));

    assert!(ops.exists(task.id).await.unwrap());
    assert!(!ops.exists(missing).await.unwrap());
    assert!(ops.exists_some(&[missing, other.id]).await.unwrap());
    assert!(!ops.exists_some(&[missing]).await.unwrap());
    assert!(ops.exists_all(&[task.id, other.id, task.id]).await.unwrap());
    assert!(!ops.exists_all(&[task.id, missing]).await.unwrap());
    assert_eq!(
        ops.intersects(&[missing, other.id, task.id]).await.unwrap(),
        [other.id, task.id]
    );
    assert_eq!(
        ops.difference(&[missing, other.id, task.id]).await.unwrap(),
        [missing]
    );

    assert!(ops.delete(&updated).await.unwrap());
    assert!(!ops.delete(&updated).await.unwrap());
    assert!(ops.delete_by_id(other.id).await.unwrap());
    assert!(!ops.delete_by_id(other.id).await.unwrap());
    assert_eq!(count_rows(&db, "tasks").await, 0);
}

/// Five rows covering text, NULL, numbers, floats, booleans and dates.
async fn seed_filter_rows(db: &Db) -> Vec<Task> {
    let ops = crud_ops(db);
    let rows = [
        ("Alpha", Some("first note"), 1, true, Some((2024, 1, 10))),
        ("alphabet soup", Some(""), 2, false, Some((2024, 2, 20))),
        ("Beta_1", None, 3, true, None),
        ("100% gamma", Some("x"), 4, false, Some((2024, 3, 30))),
        (
            "delta",
            Some("Alpha inside"),
            -5,
            false,
            Some((2023, 12, 31)),
        ),
    ];
    let mut out = Vec::new();
    for (title, notes, priority, done, due) in rows {
        let mut t = Task::new(title, priority);
        t.notes = notes.map(str::to_string);
        t.done = done;
        t.due = due.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d));
        out.push(ops.create(&t).await.unwrap());
    }
    out
}

async fn every_filter_operator(db: Db) {
    let rows = seed_filter_rows(&db).await;
    let ops = listing(&db);
    let alpha_id = rows[0].id.to_string();
    let beta_id = rows[2].id.to_string();
    let created = rows[2].created_at;
    let at = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let cases: Vec<(&str, &str, FilterValue, Vec<&str>)> = vec![
        // text
        (
            "title",
            "contains",
            one("ALPHA"),
            vec!["Alpha", "alphabet soup"],
        ),
        ("title", "contains", one("%"), vec!["100% gamma"]),
        ("title", "contains", one("_"), vec!["Beta_1"]),
        (
            "title",
            "doesNotContain",
            one("alpha"),
            vec!["100% gamma", "Beta_1", "delta"],
        ),
        ("title", "equals", one("Alpha"), vec!["Alpha"]),
        ("title", "equals", one("alpha"), vec![]),
        (
            "title",
            "doesNotEqual",
            one("Alpha"),
            vec!["100% gamma", "alphabet soup", "Beta_1", "delta"],
        ),
        ("title", "startsWith", one("alpha"), vec!["alphabet soup"]),
        ("title", "startsWith", one("100%"), vec!["100% gamma"]),
        ("title", "endsWith", one("_1"), vec!["Beta_1"]),
        ("title", "endsWith", one("A"), vec![]),
        ("notes", "isEmpty", one(""), vec!["alphabet soup", "Beta_1"]),
        (
            "notes",
            "isNotEmpty",
            one(""),
            vec!["100% gamma", "Alpha", "delta"],
        ),
        (
            "title",
            "isAnyOf",
            many(&["Alpha", "delta", "nope"]),
            vec!["Alpha", "delta"],
        ),
        (
            "title",
            "isAnyOf",
            many(&[]),
            vec!["100% gamma", "Alpha", "alphabet soup", "Beta_1", "delta"],
        ),
        (
            "title",
            "equals",
            one(""),
            vec!["100% gamma", "Alpha", "alphabet soup", "Beta_1", "delta"],
        ),
        // uuid
        ("id", "equals", one(&alpha_id), vec!["Alpha"]),
        (
            "id",
            "isAnyOf",
            many(&[&alpha_id, &beta_id]),
            vec!["Alpha", "Beta_1"],
        ),
        (
            "id",
            "doesNotEqual",
            one(&alpha_id),
            vec!["100% gamma", "alphabet soup", "Beta_1", "delta"],
        ),
        // int
        ("priority", "=", one("2"), vec!["alphabet soup"]),
        (
            "priority",
            "!=",
            one("2"),
            vec!["100% gamma", "Alpha", "Beta_1", "delta"],
        ),
        ("priority", ">", one("2"), vec!["100% gamma", "Beta_1"]),
        ("priority", "<", one("1"), vec!["delta"]),
        ("priority", ">=", one("3"), vec!["100% gamma", "Beta_1"]),
        ("priority", "<=", one("-5"), vec!["delta"]),
        (
            "priority",
            "isAnyOf",
            many(&["1", "-5"]),
            vec!["Alpha", "delta"],
        ),
        (
            "priority",
            "isNotEmpty",
            one(""),
            vec!["100% gamma", "Alpha", "alphabet soup", "Beta_1", "delta"],
        ),
        ("priority", "isEmpty", one(""), vec![]),
        // float
        ("score", ">", one("1.2"), vec!["100% gamma", "Beta_1"]),
        ("score", "=", one("0.5"), vec!["Alpha"]),
        // bool
        ("done", "is", one("true"), vec!["Alpha", "Beta_1"]),
        (
            "done",
            "is",
            one("false"),
            vec!["100% gamma", "alphabet soup", "delta"],
        ),
        // date
        ("due", "is", one("2024-02-20"), vec!["alphabet soup"]),
        (
            "due",
            "not",
            one("2024-02-20"),
            vec!["100% gamma", "Alpha", "delta"],
        ),
        (
            "due",
            "after",
            one("2024-01-10"),
            vec!["100% gamma", "alphabet soup"],
        ),
        (
            "due",
            "onOrAfter",
            one("2024-01-10"),
            vec!["100% gamma", "Alpha", "alphabet soup"],
        ),
        ("due", "before", one("2024-01-10"), vec!["delta"]),
        (
            "due",
            "onOrBefore",
            one("2024-01-10"),
            vec!["Alpha", "delta"],
        ),
        ("due", "isEmpty", one(""), vec!["Beta_1"]),
        (
            "due",
            "isNotEmpty",
            one(""),
            vec!["100% gamma", "Alpha", "alphabet soup", "delta"],
        ),
        // datetime, in the reference's `%Y-%m-%dT%H:%M:%S.%fZ` form
        ("created_at", "is", one(&at(created)), vec!["Beta_1"]),
        (
            "created_at",
            "onOrBefore",
            one(&at(created)),
            vec!["Alpha", "alphabet soup", "Beta_1"],
        ),
        (
            "created_at",
            "after",
            one(&at(created)),
            vec!["100% gamma", "delta"],
        ),
        (
            "created_at",
            "before",
            one("2000-01-01T00:00:00.000Z"),
            vec![],
        ),
        (
            "created_at",
            "onOrAfter",
            one("2000-01-01T00:00:00.000Z"),
            vec!["100% gamma", "Alpha", "alphabet soup", "Beta_1", "delta"],
        ),
        (
            "created_at",
            "not",
            one(&at(created)),
            vec!["100% gamma", "Alpha", "alphabet soup", "delta"],
        ),
        ("created_at", "isEmpty", one(""), vec![]),
        (
            "created_at",
            "isNotEmpty",
            one(""),
            vec!["100% gamma", "Alpha", "alphabet soup", "Beta_1", "delta"],
        ),
    ];
    for (field, operator, value, expected) in cases {
        let filter = PaginatedFilter::page(0, 100).filter(field, operator, value.clone());
        let page = ops
            .query(&filter)
            .await
            .unwrap_or_else(|e| panic!("{field} {operator} {value:?}: {e}"));
        let mut got = titles(&page);
        got.sort_by_key(|t| t.to_lowercase());
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort_by_key(|t| t.to_lowercase());
        assert_eq!(got, want, "{field} {operator} {value:?}");
        assert_eq!(
            page.unpaginated_total,
            want.len() as i64,
            "{field} {operator}"
        );
    }

    // Several filters must all hold.
    let both = PaginatedFilter::page(0, 100)
        .filter("title", "contains", one("alpha"))
        .filter("done", "is", one("true"));
    assert_eq!(titles(&ops.query(&both).await.unwrap()), ["Alpha"]);

    // Wrong operators and values are the client's errors.
    for (field, operator, value) in [
        ("priority", "contains", one("1")),
        ("title", ">", one("a")),
        ("done", "equals", one("true")),
        ("meta", "equals", one("{}")),
    ] {
        let err = ops
            .query(&PaginatedFilter::page(0, 10).filter(field, operator, value))
            .await
            .unwrap_err();
        assert_eq!(
            err.status(),
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {operator}: {err}"
        );
    }
    for (field, operator, value) in [
        ("priority", "=", one("two")),
        ("priority", "isAnyOf", many(&["1", "x"])),
        ("priority", "=", many(&["1", "2"])),
        ("due", "is", one("20/02/2024")),
        ("created_at", "after", one("yesterday")),
        ("id", "equals", one("not-a-uuid")),
    ] {
        let err = ops
            .query(&PaginatedFilter::page(0, 10).filter(field, operator, value.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, QueryError::InvalidValue { .. }),
            "{field} {operator} {value:?}: {err}"
        );
    }
}

async fn sorting_and_paging(db: Db) {
    let ops = crud_ops(&db);
    // 23 rows, priorities 0..=4 repeating, so sorting by priority has ties.
    let mut all = Vec::new();
    for i in 0..23 {
        all.push(
            ops.create(&Task::new(&format!("task {i:02}"), i % 5))
                .await
                .unwrap(),
        );
    }
    let list = listing(&db);

    let page = list.query(&PaginatedFilter::page(0, 10)).await.unwrap();
    assert_eq!(
        (page.total, page.unpaginated_total, page.total_pages),
        (10, 23, 3)
    );
    let last = list.query(&PaginatedFilter::page(2, 10)).await.unwrap();
    assert_eq!(
        (last.total, last.unpaginated_total, last.total_pages),
        (3, 23, 3)
    );
    let beyond = list.query(&PaginatedFilter::page(7, 10)).await.unwrap();
    assert_eq!(
        (beyond.total, beyond.unpaginated_total, beyond.total_pages),
        (0, 23, 3)
    );
    assert!(beyond.items.is_empty());
    let exact = list.query(&PaginatedFilter::page(0, 23)).await.unwrap();
    assert_eq!((exact.total, exact.total_pages), (23, 1));
    let none = list
        .query(&PaginatedFilter::page(0, 10).filter("title", "equals", one("nothing")))
        .await
        .unwrap();
    assert_eq!(
        (none.total, none.unpaginated_total, none.total_pages),
        (0, 0, 0)
    );

    // Sorted pages concatenate to the whole sorted table, ties broken by id in the same
    // direction.
    for direction in [Direction::Asc, Direction::Desc] {
        let mut seen = Vec::new();
        for p in 0..3 {
            let filter = PaginatedFilter::page(p, 10).sort("priority", direction);
            seen.extend(list.query(&filter).await.unwrap().items);
        }
        let mut expected = all.clone();
        expected.sort_by(|a, b| {
            let by_priority = a.priority.cmp(&b.priority);
            let by_priority = if direction == Direction::Desc {
                by_priority.reverse()
            } else {
                by_priority
            };
            let by_id = a.id.cmp(&b.id);
            by_priority.then(if direction == Direction::Desc {
                by_id.reverse()
            } else {
                by_id
            })
        });
        assert_eq!(
            seen.iter().map(|t| t.id).collect::<Vec<_>>(),
            expected.iter().map(|t| t.id).collect::<Vec<_>>(),
            "{direction:?}"
        );
    }

    // Two sort models: priority descending, then title ascending.
    let page = list
        .query(
            &PaginatedFilter::page(0, 3)
                .sort("priority", Direction::Desc)
                .sort("title", Direction::Asc),
        )
        .await
        .unwrap();
    assert_eq!(titles(&page), ["task 04", "task 09", "task 14"]);

    // Page size bounds.
    for size in [0, 101] {
        let err = list
            .query(&PaginatedFilter::page(0, size))
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::InvalidPagination(_)), "{err}");
        assert_eq!(err.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        list.query(&PaginatedFilter::page(0, 100))
            .await
            .unwrap()
            .total,
        23
    );
}

async fn count_strategies_agree(db: Db) {
    let ops = crud_ops(&db);
    for i in 0..12 {
        ops.create(&Task::new(&format!("t{i}"), i)).await.unwrap();
    }
    let filter = |page| PaginatedFilter::page(page, 5).filter("priority", ">=", one("2"));
    for page in [0, 1, 2, 3] {
        let separate = listing(&db).query(&filter(page)).await.unwrap();
        let window = listing(&db)
            .count(CountStrategy::Window)
            .query(&filter(page))
            .await
            .unwrap();
        assert_eq!(separate, window, "page {page}");
        assert_eq!(separate.unpaginated_total, 10);
        assert_eq!(separate.total_pages, 2);
        let uncounted = listing(&db)
            .count(CountStrategy::None)
            .query(&filter(page))
            .await
            .unwrap();
        assert_eq!(
            (uncounted.unpaginated_total, uncounted.total_pages),
            (-1, 0)
        );
        assert_eq!(uncounted.items, separate.items);
    }
}

async fn keyset_paging(db: Db) {
    let ops = crud_ops(&db);
    let mut all = Vec::new();
    for i in 0..17 {
        all.push(
            ops.create(&Task::new(&format!("k{i:02}"), i % 4))
                .await
                .unwrap(),
        );
    }
    let list = listing(&db);
    for (filter, ordering) in [
        (PaginatedFilter::page(0, 5), None),
        (
            PaginatedFilter::page(0, 5).sort("priority", Direction::Desc),
            Some(Direction::Desc),
        ),
        (
            PaginatedFilter::page(0, 4).sort("title", Direction::Asc),
            Some(Direction::Asc),
        ),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = list.query_keyset(&filter, cursor.as_deref()).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= filter.page_size as usize);
            seen.extend(page.items.iter().map(|t| t.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(pages < 10, "keyset paging does not end");
        }
        assert_eq!(pages, 17usize.div_ceil(filter.page_size as usize));
        // The same order as offset paging over the whole table.
        let offset = list
            .query(&PaginatedFilter {
                page: 0,
                page_size: 100,
                ..filter.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            seen,
            offset.items.iter().map(|t| t.id).collect::<Vec<_>>(),
            "{ordering:?}"
        );
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 17);
    }

    // Filters apply to every keyset page.
    let filtered = PaginatedFilter::page(0, 2)
        .sort("title", Direction::Asc)
        .filter("priority", "=", one("1"));
    let first = list.query_keyset(&filtered, None).await.unwrap();
    let second = list
        .query_keyset(&filtered, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(
        second.next_cursor, None,
        "a full last page has no next cursor"
    );
    let got: Vec<_> = [first.items, second.items]
        .concat()
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(got, ["k01", "k05", "k09", "k13"]);

    // A cursor only continues the ordering that issued it; forged ones are rejected.
    let by_title = PaginatedFilter::page(0, 3).sort("title", Direction::Asc);
    let cursor = list
        .query_keyset(&by_title, None)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    let other = PaginatedFilter::page(0, 3).sort("title", Direction::Desc);
    let err = list.query_keyset(&other, Some(&cursor)).await.unwrap_err();
    assert!(matches!(err, QueryError::InvalidCursor(_)), "{err}");
    for forged in ["' OR 1=1 --", "bm90IGpzb24", &cursor[1..]] {
        let err = list
            .query_keyset(&by_title, Some(forged))
            .await
            .unwrap_err();
        assert_eq!(
            err.status(),
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "{forged}"
        );
    }
    let two_sorts = PaginatedFilter::page(0, 3)
        .sort("title", Direction::Asc)
        .sort("priority", Direction::Asc);
    assert!(list.query_keyset(&two_sorts, None).await.is_err());
}

async fn hostile_fields_and_values(db: Db) {
    let ops = crud_ops(&db);
    let hostile_title = "'); DROP TABLE victims; --";
    let stored = ops.create(&Task::new(hostile_title, 1)).await.unwrap();
    assert_eq!(ops.get(stored.id).await.unwrap().title, hostile_title);
    ops.create(&Task::new("plain", 2)).await.unwrap();
    let list = listing(&db);

    let hostile_fields = [
        "name; DROP TABLE victims",
        "title; DROP TABLE victims; --",
        "title\"; DROP TABLE victims; --",
        "title\" = '' OR 1=1 --",
        "\"title\"",
        "tasks.title",
        "",
    ];
    for field in hostile_fields {
        let sorted = list
            .query(&PaginatedFilter::default().sort(field, Direction::Asc))
            .await
            .unwrap_err();
        assert!(
            matches!(&sorted, QueryError::UnknownField { field: f, purpose: "sorting", .. } if f == field),
            "{sorted}"
        );
        assert_eq!(sorted.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        let filtered = list
            .query(&PaginatedFilter::default().filter(field, "equals", one("x")))
            .await
            .unwrap_err();
        assert!(
            matches!(
                filtered,
                QueryError::UnknownField {
                    purpose: "filtering",
                    ..
                }
            ),
            "{filtered}"
        );
        assert!(
            list.query_keyset(
                &PaginatedFilter::default().sort(field, Direction::Asc),
                None
            )
            .await
            .is_err()
        );
    }
    let op_err = list
        .query(&PaginatedFilter::default().filter("title", "= '' OR 1=1 --", one("x")))
        .await
        .unwrap_err();
    assert!(
        matches!(op_err, QueryError::UnknownOperator { .. }),
        "{op_err}"
    );

    for (operator, value, expected) in [
        ("equals", one("' OR 1=1 --"), 0),
        ("equals", one("x' OR '1'='1"), 0),
        ("contains", one("' OR 1=1 --"), 0),
        ("startsWith", one("'); DROP"), 1),
        ("endsWith", one("victims; --"), 1),
        ("isAnyOf", many(&["plain') OR 1=1 --", hostile_title]), 1),
        ("equals", one(hostile_title), 1),
        ("doesNotEqual", one("' OR 1=1 --"), 2),
    ] {
        let page = list
            .query(&PaginatedFilter::default().filter("title", operator, value.clone()))
            .await
            .unwrap();
        assert_eq!(page.unpaginated_total, expected, "{operator} {value:?}");
    }
    for value in ["1 OR 1=1", "1; DROP TABLE victims", "0x10"] {
        let err = list
            .query(&PaginatedFilter::default().filter("priority", "=", one(value)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, QueryError::InvalidValue { .. }),
            "{value}: {err}"
        );
    }
    // Nothing was dropped and nothing else changed.
    assert_eq!(count_rows(&db, "victims").await, 1);
    assert_eq!(count_rows(&db, "tasks").await, 2);
}

#[derive(Debug, Clone, serde::Deserialize)]
struct TaskFilter {
    #[serde(flatten)]
    page: PaginatedFilter,
    #[serde(flatten)]
    order: jararaca_query::DateOrderedFilter,
    done: Option<bool>,
}

impl AsRef<PaginatedFilter> for TaskFilter {
    fn as_ref(&self) -> &PaginatedFilter {
        &self.page
    }
}

impl AsRef<jararaca_query::DateOrderedFilter> for TaskFilter {
    fn as_ref(&self) -> &jararaca_query::DateOrderedFilter {
        &self.order
    }
}

async fn custom_injectors_and_date_order(db: Db) {
    let ops = crud_ops(&db);
    for (i, title) in ["first", "second", "third", "fourth"]
        .into_iter()
        .enumerate()
    {
        let mut t = Task::new(title, i as i64);
        t.done = i % 2 == 1;
        ops.create(&t).await.unwrap();
        // Distinct creation times.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let only_done = |filter: &TaskFilter, select: &mut jararaca_query::Select| {
        if let Some(done) = filter.done {
            let mut cond = Sql::new();
            cond.ident("done").push(" = ").bind(done);
            select.and_where(cond);
        }
        Ok::<_, QueryError>(())
    };
    let list: QueryOperations<Task, TaskFilter> = QueryOperations::new(Fields::of::<Task>())
        .on(db.session())
        .injector(jararaca_query::DateOrderedInjector::new())
        .injector(only_done);

    let filter: TaskFilter =
        serde_json::from_value(serde_json::json!({"order_by": "desc"})).unwrap();
    let page = list.query(&filter).await.unwrap();
    assert_eq!(titles(&page), ["fourth", "third", "second", "first"]);

    let filter: TaskFilter = serde_json::from_value(
        serde_json::json!({"order_by": "asc", "done": true, "page_size": 1}),
    )
    .unwrap();
    let page = list.query(&filter).await.unwrap();
    assert_eq!(
        (titles(&page), page.unpaginated_total, page.total_pages),
        (vec!["second".to_string()], 2, 2)
    );

    // A per-call interceptor runs after the construction-time injectors.
    let not_fourth = |_: &TaskFilter, select: &mut jararaca_query::Select| {
        let mut cond = Sql::new();
        cond.ident("title").push(" <> ").bind("fourth");
        select.and_where(cond);
        Ok::<_, QueryError>(())
    };
    let filter: TaskFilter = serde_json::from_value(serde_json::json!({"done": true})).unwrap();
    let page = list.query_with(&filter, &[&not_fourth]).await.unwrap();
    assert_eq!(titles(&page), ["second"]);
}

/// A NUL in text or JSON, or a number out of a column's range, is the client's mistake (422)
/// on PostgreSQL, told without the database's wording; SQLite stores a NUL as it is.
async fn values_a_column_cannot_hold(db: Db) {
    let ops = crud_ops(&db);
    let postgres = db.as_postgres().is_some();
    let mut with_nul = Task::new("nul\0title", 1);
    let stored = ops.create(&with_nul).await;
    let mut notes = Task::new("fine", 2);
    notes.notes = Some("notes\0".into());
    let mut meta = Task::new("fine too", 3);
    meta.meta = serde_json::json!({ "tags": ["a\0b"] });
    let filtered = listing(&db)
        .query(&PaginatedFilter::default().filter("title", "contains", one("a\0")))
        .await;
    if !postgres {
        assert_eq!(
            ops.get(stored.unwrap().id).await.unwrap().title,
            "nul\0title"
        );
        assert!(filtered.is_ok());
        return;
    }
    let outcomes = [
        stored.map(drop),
        ops.create(&notes).await.map(drop),
        ops.create(&meta).await.map(drop),
        filtered.map(drop),
    ];
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(matches!(error, QueryError::Unstorable(_)), "{error:?}");
        assert_eq!(error.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.to_string().contains("NUL"), "{error}");
    }
    with_nul.title = "no nul".into();
    with_nul.meta = serde_json::json!({});
    ops.create(&with_nul).await.unwrap();

    // Out of an INT4's range: the database's data exception, answered 422 without its text.
    let mut cast = Sql::new();
    cast.push("SELECT CAST(").bind(i64::MAX).push(" AS INT4)");
    let error = db.session().fetch_i64(&cast).await.unwrap_err();
    assert_eq!(
        error.status(),
        http::StatusCode::UNPROCESSABLE_ENTITY,
        "{error}"
    );
    #[cfg(feature = "axum")]
    {
        use axum_core::response::IntoResponse;
        let response = error.into_response();
        assert_eq!(response.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    // An error valid input reaches stays a 500.
    let mut missing = Sql::new();
    missing.push("SELECT count(*) FROM no_such_table");
    let error = db.session().fetch_i64(&missing).await.unwrap_err();
    assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
}
