//! Next fire times against croniter's own answers.
//!
//! `data/croniter_table.json` was computed with croniter 3.0.4 (the version Python jararaca
//! 0.5.13 uses) by `data/croniter_table.py pytz`, in a Python venv
//! (`pip install croniter==3.0.* pytz`): for each expression, zone and start instant, six
//! successive `croniter(expr, previous).get_next(datetime)` results, as the reference's beat
//! computes them from the last dispatch time. The starts sit just before the US and EU DST
//! transitions of 2026, so the table covers the hour that is skipped and the hour that
//! repeats in America/New_York and Europe/Berlin.
//!
//! croniter is wrong on some of those days, and there we are deliberately not like it; each
//! such row is listed in [`DST_DIFFERENCES`] with our answer and why, and the test fails if
//! any other row differs (or if one of these stops differing).
//!
//! `data/croniter_table_zoneinfo.json` is the same table with each start time built exactly
//! as the reference's beat builds it (`datetime.fromtimestamp(last, tz=ZoneInfo(zone))`,
//! `croniter_table.py zoneinfo`). With such times croniter 3.0.4 misplaces fire times for a
//! while after each DST change (`@daily` in New York fires at 23:00 on 8 March 2026 and
//! again at midnight): there we keep the answers of the first table, and the second test
//! checks that every other row matches exactly.

use jararaca_cron::{CronExpr, parse_timezone};

#[derive(serde::Deserialize)]
struct Row {
    expression: String,
    zone: String,
    start: i64,
    next: Vec<i64>,
}

/// Rows where croniter's answer is not kept: (expression, zone, start, our first answers
/// that differ, why).
const DST_DIFFERENCES: &[(&str, &str, i64, &[i64], &str)] = &[
    // 2026-03-08 02:30 does not exist in New York: we fire when the gap ends (03:00 EDT),
    // as ISC cron does; croniter shifts it by the offset change (03:30 EDT).
    (
        "30 2 * * *",
        "America/New_York",
        1772920800,
        &[1772953200],
        "gap: fire at its end",
    ),
    (
        "30 2 * * *",
        "Europe/Berlin",
        1774735200,
        &[1774746000],
        "gap: fire at its end",
    ),
    // croniter skips 03:00 EDT (it jumps from 00:00 to 04:00) although hour 3 matches.
    (
        "0 */3 * * *",
        "America/New_York",
        1772920800,
        &[1772924400, 1772935200, 1772946000, 1772953200],
        "03:00 EDT matches */3",
    ),
    // Spring, Berlin: croniter goes from 00:00 to 04:00, skipping 03:00 CEST.
    (
        "0 */3 * * *",
        "Europe/Berlin",
        1774735200,
        &[1774738800, 1774746000],
        "03:00 CEST matches */3",
    ),
    // Autumn, New York: croniter fires at 02:00 EST (hour 2 does not match */3).
    (
        "0 */3 * * *",
        "America/New_York",
        1793484000,
        &[1793494800, 1793505600, 1793520000],
        "02:00 does not match */3",
    ),
    // Autumn, Berlin: croniter fires at 02:00 CET, 08:00 CET and 03:05 + 04:05 CET (twice
    // on one Sunday) — hours its expressions do not match.
    (
        "0 */3 * * *",
        "Europe/Berlin",
        1792879200,
        &[1792893600],
        "02:00 does not match */3",
    ),
    (
        "0 9-17/2 * * *",
        "Europe/Berlin",
        1792879200,
        &[1792915200],
        "08:00 does not match 9-17/2",
    ),
    (
        "5 4 * * sun",
        "Europe/Berlin",
        1792879200,
        &[1792897500],
        "03:05 does not match hour 4",
    ),
];

#[test]
fn next_fire_times_match_croniter() {
    let rows: Vec<Row> =
        serde_json::from_str(include_str!("data/croniter_table.json")).expect("the table parses");
    assert!(rows.len() > 400, "the table is complete");
    let mut mismatches = Vec::new();
    for row in &rows {
        let expr = CronExpr::parse_for("table", &row.expression).expect("croniter reads it");
        let tz = parse_timezone(&row.zone).unwrap();
        let mut current = row.start;
        let mut ours = Vec::new();
        for _ in &row.next {
            current = expr.next_after_unix(current, tz).expect("it fires again");
            ours.push(current);
        }
        let known = DST_DIFFERENCES.iter().find(|(e, z, start, _, _)| {
            *e == row.expression && *z == row.zone && *start == row.start
        });
        if let Some((_, _, _, expected, why)) = known {
            assert_ne!(
                ours, row.next,
                "{:?} in {} now agrees with croniter",
                row.expression, row.zone
            );
            assert_eq!(
                &ours[..expected.len()],
                *expected,
                "{:?} in {}: {why}",
                row.expression,
                row.zone
            );
            continue;
        }
        if ours != row.next {
            mismatches.push(format!(
                "{:?} in {} from {}: croniter {:?}, ours {:?}",
                row.expression, row.zone, row.start, row.next, ours
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} rows differ:\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
}

fn rows(json: &str) -> Vec<Row> {
    serde_json::from_str(json).expect("the table parses")
}

fn ours(row: &Row) -> Vec<i64> {
    let expr = CronExpr::parse_for("table", &row.expression).expect("croniter reads it");
    let tz = parse_timezone(&row.zone).unwrap();
    let mut current = row.start;
    row.next
        .iter()
        .map(|_| {
            current = expr.next_after_unix(current, tz).expect("it fires again");
            current
        })
        .collect()
}

#[test]
fn next_fire_times_match_croniter_from_the_references_zoneinfo_times() {
    let pytz = rows(include_str!("data/croniter_table.json"));
    let zoneinfo = rows(include_str!("data/croniter_table_zoneinfo.json"));
    assert_eq!(pytz.len(), zoneinfo.len());
    let (mut same, mut dst_misplaced) = (0, 0);
    let mut mismatches = Vec::new();
    for (row, pytz_row) in zoneinfo.iter().zip(&pytz) {
        assert_eq!(
            (&row.expression, &row.zone, row.start),
            (&pytz_row.expression, &pytz_row.zone, pytz_row.start)
        );
        let ours = ours(row);
        if ours == row.next {
            same += 1;
        } else if (row.next != pytz_row.next && row.zone != "UTC")
            || DST_DIFFERENCES.iter().any(|(e, z, start, _, _)| {
                *e == row.expression && *z == row.zone && *start == row.start
            })
        {
            // croniter's zoneinfo answer is one of its DST slips, or a listed difference:
            // ours are checked against its pytz answers by the test above.
            dst_misplaced += 1;
        } else {
            mismatches.push(format!(
                "{:?} in {} from {}: croniter {:?}, ours {:?}",
                row.expression, row.zone, row.start, row.next, ours
            ));
        }
    }
    println!("{same} rows as croniter; {dst_misplaced} where croniter slips after a DST change");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(same > 300, "only {same} rows agree");
}
