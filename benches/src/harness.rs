//! What every workload shares: option parsing, medians, and the closing `RATIO` line.

use std::future::Future;
use std::process::ExitCode;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `--flag N` pairs, every value a whole number.
pub(crate) fn numeric_flags(args: &[String]) -> Result<Vec<(&str, u64)>, String> {
    let mut flags = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = value
            .parse()
            .map_err(|_| format!("{flag}: `{value}` is not a number"))?;
        flags.push((flag.as_str(), number));
    }
    Ok(flags)
}

/// The median of `values` (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `bench` on `runtime` and prints `RATIO <workload> <value>` as the last line.
pub(crate) fn report<F>(
    workload: &str,
    runtime: std::io::Result<tokio::runtime::Runtime>,
    bench: F,
) -> ExitCode
where
    F: Future<Output = Result<f64, BoxError>>,
{
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench) {
        Ok(ratio) => {
            println!("RATIO {workload} {ratio:.3}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{workload}: {e}");
            ExitCode::FAILURE
        }
    }
}
