//! Names: the runtime's case rules, identifiers and reserved words.

/// `@jararaca/core`'s response rule (`/_[a-z]/g` → the letter uppercased): each `_` followed
/// by a lowercase ASCII letter becomes that letter uppercased; nothing else changes.
pub fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&next) if c == '_' && next.is_ascii_lowercase() => {
                out.push(next.to_ascii_uppercase());
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// `@jararaca/core`'s request rule (`/[A-Z]/g` → `_` and the letter lowercased).
pub fn camel_to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` survives the runtime's trip: the property the client writes
/// (`snake_to_camel`) goes back to the server as `name` (`camel_to_snake`).
pub fn survives_round_trip(name: &str) -> bool {
    camel_to_snake(&snake_to_camel(name)) == name
}

/// Whether `s` is a JavaScript identifier (ASCII letters, digits, `_`, `$`).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Words that cannot name a parameter or a binding in strict-mode code (class bodies and
/// modules are strict).
const RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// Whether `name` is reserved in strict-mode code.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// A camelCase identifier from any name (`task_id`, `x-tenant-id`, `Content-Type`), with a
/// reserved word escaped by a trailing `_` (`class` → `class_`).
pub(crate) fn camel_identifier(name: &str) -> String {
    let mut out = String::new();
    for (i, part) in name
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '$')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        if i == 0 {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_lowercase());
                out.extend(chars);
            }
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    escape(out)
}

/// `name`, or `name_` when it is a reserved word.
pub(crate) fn escape(name: String) -> String {
    if is_reserved(&name) { name + "_" } else { name }
}

/// `TasksController` → `tasksController`.
pub(crate) fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// An enum member name from a wire value or a variant name: `in_progress` / `InProgress` →
/// `IN_PROGRESS`.
pub(crate) fn constant_name(value: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_uppercase());
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut out = if trimmed.is_empty() {
        "_".to_owned()
    } else {
        trimmed.to_owned()
    };
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_rules_are_the_runtimes() {
        assert_eq!(snake_to_camel("customer_name"), "customerName");
        assert_eq!(snake_to_camel("line_1"), "line_1");
        assert_eq!(snake_to_camel("MESSAGE_ID"), "MESSAGE_ID");
        assert_eq!(snake_to_camel("a__b"), "a_B");
        assert_eq!(camel_to_snake("customerName"), "customer_name");
        assert_eq!(camel_to_snake("MESSAGE_ID"), "_m_e_s_s_a_g_e__i_d");
        assert!(survives_round_trip("unpaginated_total"));
        assert!(survives_round_trip("line_1"));
        assert!(!survives_round_trip("MESSAGE_ID"));
        assert!(!survives_round_trip("userId"));
        assert!(survives_round_trip("a__b"));
        assert!(!survives_round_trip("item2Id"));
    }

    #[test]
    fn identifiers_are_camel_case_and_escaped() {
        assert_eq!(camel_identifier("task_id"), "taskId");
        assert_eq!(camel_identifier("x-tenant-id"), "xTenantId");
        assert_eq!(camel_identifier("class"), "class_");
        assert_eq!(camel_identifier("2fa"), "_2fa");
        assert_eq!(constant_name("in_progress"), "IN_PROGRESS");
        assert_eq!(constant_name("InProgress"), "IN_PROGRESS");
        assert_eq!(constant_name("2x"), "_2X");
    }
}
