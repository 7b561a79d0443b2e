//! Counting the instructions a server executes under valgrind's callgrind: unlike throughput
//! on a shared machine, the count for a fixed request sequence is the same on every run and
//! under any load.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the instruction count cannot run here, or `None` when valgrind is installed.
pub(crate) fn missing() -> Option<String> {
    let found = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| {
        "valgrind is not installed, so instructions per request are not counted; \
         install it with `apt-get install valgrind` (Debian/Ubuntu) and run again"
            .to_owned()
    })
}

/// `program args…` under callgrind, pinned to `core` when given, writing its profile to `out`
/// and valgrind's own messages to `out.log`.
///
/// The profile holds every thread of the process in one set of totals (`--separate-threads=no`),
/// so work a runtime hands to another thread is counted too. Children are not followed.
pub(crate) fn command(core: Option<usize>, out: &Path, program: &str, args: &[&str]) -> Command {
    let out_file = format!("--callgrind-out-file={}", out.display());
    let log_file = format!("--log-file={}.log", out.display());
    let mut valgrind_args = vec![
        "--tool=callgrind",
        "--separate-threads=no",
        "--trace-children=no",
        out_file.as_str(),
        log_file.as_str(),
        program,
    ];
    valgrind_args.extend_from_slice(args);
    crate::pin::command(core, "valgrind", &valgrind_args)
}

/// Stops a process started by [`command`] with SIGTERM, which lets callgrind write its
/// profile (SIGKILL would lose it), and waits for it to exit.
pub(crate) fn stop(child: &mut Child) -> Result<(), String> {
    let pid = child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|s| s.success());
    if !signalled {
        return Err(format!("cannot send SIGTERM to {pid}"));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {pid}: {e}")),
        }
    }
    Err(format!(
        "process {pid} did not exit within a minute of SIGTERM"
    ))
}

/// The instructions counted in the profile `out`: its `totals:` line, or `summary:` where an
/// older callgrind writes only that.
pub(crate) fn total(out: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(out)
        .map_err(|e| format!("cannot read the callgrind profile {}: {e}", out.display()))?;
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    line("totals:")
        .or_else(|| line("summary:"))
        .ok_or_else(|| format!("no `totals:` line in {}", out.display()))
}

/// `callgrind_annotate` on the profile `out`, listing every function (`--threshold=100`),
/// exclusive costs or, with `inclusive`, costs including callees.
pub(crate) fn annotate(out: &Path, inclusive: bool) -> Result<String, String> {
    let output = Command::new("callgrind_annotate")
        .arg("--auto=no")
        .arg("--threshold=100")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg(out)
        .output()
        .map_err(|e| format!("cannot run callgrind_annotate (part of valgrind): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "callgrind_annotate {}: {}",
            out.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What one function cost in a profile: its own instructions, and those with its callees'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cost {
    pub(crate) exclusive: u64,
    pub(crate) inclusive: u64,
}

/// The cost of each function in the profile `out`, read from the file itself.
///
/// `callgrind_annotate --inclusive=yes` lists a function once per source file its inlined
/// code came from, and more than one of those entries carries the calls, so its inclusive
/// numbers cannot be summed per function; the file's own records can. A function's name is
/// what callgrind demangled (generic parameters dropped), so the instantiations of one
/// generic function add up to one entry.
pub(crate) fn costs(out: &Path) -> Result<HashMap<String, Cost>, String> {
    let text = std::fs::read_to_string(out)
        .map_err(|e| format!("cannot read the callgrind profile {}: {e}", out.display()))?;
    Ok(parse_costs(&text))
}

fn parse_costs(text: &str) -> HashMap<String, Cost> {
    // Names are compressed: `(7) name` defines id 7 the first time, `(7)` refers to it after.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut resolve = |spec: &str| -> String {
        let spec = spec.trim();
        match spec.strip_prefix('(').and_then(|s| s.split_once(')')) {
            Some((id, rest)) => {
                let rest = rest.trim();
                if !rest.is_empty() {
                    names.insert(id.to_owned(), rest.to_owned());
                }
                names.get(id).cloned().unwrap_or_default()
            }
            None => spec.to_owned(),
        }
    };
    let mut costs: HashMap<String, Cost> = HashMap::new();
    let mut function = String::new();
    let mut callee = String::new();
    let mut after_calls = false;
    for line in text.lines() {
        let Some(first) = line.chars().next() else {
            continue;
        };
        if first.is_ascii_digit() || matches!(first, '+' | '-' | '*') {
            // `<position> <Ir>`: after a `calls=` line, the inclusive cost of those calls.
            let cost: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let entry = costs.entry(function.clone()).or_default();
            if after_calls {
                if callee != function {
                    entry.inclusive += cost;
                }
                after_calls = false;
            } else {
                entry.exclusive += cost;
                entry.inclusive += cost;
            }
        } else if let Some(spec) = line.strip_prefix("fn=") {
            function = resolve(spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            callee = resolve(spec);
        } else if line.starts_with("calls=") {
            after_calls = true;
        }
    }
    costs
}

/// One function's instructions per request in two servers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extra {
    pub(crate) function: String,
    pub(crate) ours: f64,
    pub(crate) raw: f64,
}

/// Per function, the instructions per request (`pick`ed from its [`Cost`]) of ours and of
/// raw, from each server's profiles after two runs that differ by `requests` requests; sorted
/// by what ours spends beyond raw, most first.
pub(crate) fn extra_per_request(
    ours: [&HashMap<String, Cost>; 2],
    raw: [&HashMap<String, Cost>; 2],
    requests: u64,
    pick: fn(&Cost) -> u64,
) -> Vec<Extra> {
    let per_request = |runs: [&HashMap<String, Cost>; 2], function: &str| {
        let cost = |run: &HashMap<String, Cost>| run.get(function).map_or(0, pick) as f64;
        (cost(runs[1]) - cost(runs[0])) / requests as f64
    };
    let mut functions: Vec<&String> = ours[1].keys().chain(raw[1].keys()).collect();
    functions.sort();
    functions.dedup();
    let mut rows: Vec<Extra> = functions
        .into_iter()
        .map(|function| Extra {
            function: function.clone(),
            ours: per_request(ours, function),
            raw: per_request(raw, function),
        })
        .collect();
    rows.sort_by(|a, b| (b.ours - b.raw).total_cmp(&(a.ours - a.raw)));
    rows
}

/// `rows` as a table: ours, raw and the difference per request, then the function.
pub(crate) fn table(rows: &[Extra]) -> String {
    let mut text = format!("{:>10} {:>10} {:>10}  function\n", "ours", "raw", "extra");
    for row in rows {
        text.push_str(&format!(
            "{:>10.1} {:>10.1} {:>10.1}  {}\n",
            row.ours,
            row.raw,
            row.ours - row.raw,
            row.function
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape callgrind writes: compressed names, a call's inclusive cost on the line after
    // `calls=`, and a function's cost split over two `fn=` blocks (two source files).
    const PROFILE: &str = "\
events: Ir
fl=(1) src/main.rs
fn=(1) main
10 5
cfn=(2) work
calls=3 20
11 300
cfn=(1)
calls=1 10
12 1000
fn=(2)
20 100
fi=(2) src/inlined.rs
21 200
fl=(3) src/other.rs
fn=(2)
30 7
summary: 312
totals: 312
";

    #[test]
    fn adds_callees_to_inclusive_costs_and_a_function_over_its_blocks() {
        let costs = parse_costs(PROFILE);
        assert_eq!(
            costs["main"],
            Cost {
                exclusive: 5,
                inclusive: 305
            },
            "a call to itself adds nothing"
        );
        assert_eq!(
            costs["work"],
            Cost {
                exclusive: 307,
                inclusive: 307
            }
        );
    }

    #[test]
    fn ranks_functions_by_what_ours_spends_beyond_raw_per_request() {
        let map = |pairs: &[(&str, u64)]| -> HashMap<String, Cost> {
            pairs
                .iter()
                .map(|(k, v)| {
                    let cost = Cost {
                        exclusive: *v,
                        inclusive: *v,
                    };
                    ((*k).to_owned(), cost)
                })
                .collect()
        };
        let ours = [
            map(&[("malloc", 100), ("fmt", 0)]),
            map(&[("malloc", 1100), ("fmt", 300)]),
        ];
        let raw = [map(&[("malloc", 100)]), map(&[("malloc", 600)])];
        let rows = extra_per_request([&ours[0], &ours[1]], [&raw[0], &raw[1]], 10, |c| {
            c.exclusive
        });
        assert_eq!(rows[0].function, "malloc");
        assert_eq!((rows[0].ours, rows[0].raw), (100.0, 50.0));
        assert_eq!(
            rows[1].function, "fmt",
            "a function raw never calls counts too"
        );
        assert_eq!((rows[1].ours, rows[1].raw), (30.0, 0.0));
    }
}
