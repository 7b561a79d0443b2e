//! Cron expressions as the reference reads them (croniter 3.0), evaluated with croner.
//!
//! croniter takes 5 fields (`minute hour day-of-month month day-of-week`) or 6, the sixth
//! being **seconds** (`* * * * * */5` = every 5 s); croner expects seconds first, so the
//! sixth field is moved to the front. Aliases (`@hourly`, `@daily`, `@midnight`, `@weekly`,
//! `@monthly`, `@yearly`, `@annually`) are expanded as croniter expands them. Month and day
//! names (`jan`, `mon-fri`), ranges, steps, lists and `L` (last day of the month) are read
//! by croner with croniter's meaning; day-of-month and day-of-week, when both are
//! restricted, match either (Vixie cron's OR, as croniter).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::CronError;

/// The environment variable naming the zone cron expressions are read in (the reference's;
/// default `UTC`).
pub const TIMEZONE_ENV: &str = "JARARACA_DEFAULT_TIMEZONE";

/// A parsed cron expression.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use jararaca_cron::CronExpr;
///
/// let every_5s: CronExpr = "* * * * * */5".parse().unwrap();
/// let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
/// let next = every_5s.next_after(start, chrono_tz::UTC).unwrap();
/// assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap());
/// ```
#[derive(Clone)]
pub struct CronExpr {
    source: String,
    cron: Cron,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronExpr").field(&self.source).finish()
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl CronExpr {
    /// Parses `expression`; an error names `action`.
    pub fn parse_for(action: &str, expression: &str) -> Result<Self, CronError> {
        let invalid = |reason: String| CronError::InvalidExpression {
            action: action.to_string(),
            expression: expression.to_string(),
            reason,
        };
        let pattern = to_croner(expression).map_err(invalid)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(&pattern)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            source: expression.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`, reading the expression in zone `tz` (as
    /// croniter's `get_next` from a time in that zone); `None` if it never fires again.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// [`next_after`](Self::next_after) in unix seconds.
    pub fn next_after_unix(&self, after: i64, tz: Tz) -> Option<i64> {
        let after = Utc.timestamp_opt(after, 0).single()?;
        self.next_after(after, tz).map(|next| next.timestamp())
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(expression: &str) -> Result<Self, CronError> {
        Self::parse_for("<unnamed>", expression)
    }
}

/// croniter's syntax as croner reads it: aliases expanded, seconds moved first.
fn to_croner(expression: &str) -> Result<String, String> {
    let trimmed = expression.trim();
    let expanded = match trimmed.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        "@monthly" => "0 0 1 * *".to_string(),
        "@weekly" => "0 0 * * 0".to_string(),
        "@daily" | "@midnight" => "0 0 * * *".to_string(),
        "@hourly" => "0 * * * *".to_string(),
        alias if alias.starts_with('@') => {
            return Err(format!("unknown alias `{trimmed}`"));
        }
        _ => trimmed.to_string(),
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    match fields.len() {
        5 => Ok(fields.join(" ")),
        6 => Ok(format!("{} {}", fields[5], fields[..5].join(" "))),
        n => Err(format!("{n} fields")),
    }
}

/// The zone named by `JARARACA_DEFAULT_TIMEZONE`, `UTC` when it is unset or empty.
pub fn default_timezone() -> Result<Tz, CronError> {
    match std::env::var(TIMEZONE_ENV) {
        Ok(name) if !name.trim().is_empty() => parse_timezone(name.trim()),
        _ => Ok(chrono_tz::UTC),
    }
}

/// An IANA zone by name (`UTC`, `America/Sao_Paulo`).
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.parse::<Tz>()
        .map_err(|_| CronError::InvalidTimezone(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_move_first_and_aliases_expand() {
        assert_eq!(to_croner("* * * * * */5").unwrap(), "*/5 * * * * *");
        assert_eq!(to_croner(" 0  9 * * mon-fri ").unwrap(), "0 9 * * mon-fri");
        assert_eq!(to_croner("@midnight").unwrap(), "0 0 * * *");
        assert!(to_croner("@sometimes").is_err());
        assert!(to_croner("* * *").is_err());
    }

    #[test]
    fn an_invalid_expression_names_the_action() {
        let error = CronExpr::parse_for("purge_done", "61 * * * *").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("purge_done") && text.contains("61 * * * *"),
            "{text}"
        );
        let error = CronExpr::parse_for("weekly", "* * * * * * * *").unwrap_err();
        assert!(error.to_string().contains("8 fields"), "{error}");
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert_eq!(
            parse_timezone("Europe/Berlin").unwrap(),
            chrono_tz::Europe::Berlin
        );
    }
}
