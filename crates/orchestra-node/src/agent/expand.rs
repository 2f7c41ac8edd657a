//! `$(VAR)` references in env values, commands and arguments, expanded with kubelet's rules:
//! `$(NAME)` becomes the variable's value when it is defined and stays as written when it is
//! not; `$$` is an escaped `$`; any other `$` (a `$` before anything but `(` or `$`, a `$(`
//! that is never closed, a trailing `$`) is kept as it is.

/// Expands `input` with `lookup` (see the [module docs](self)).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Everything before `copied` is in `out`. Only ASCII bytes (`$`, `(`, `)`) are split on,
    // so every slice below starts and ends on a character boundary.
    let mut copied = 0;
    let mut cursor = 0;
    while cursor + 1 < bytes.len() {
        if bytes[cursor] != b'$' {
            cursor += 1;
            continue;
        }
        out.push_str(&input[copied..cursor]);
        match bytes[cursor + 1] {
            b'$' => {
                out.push('$');
                cursor += 2;
            }
            b'(' => match input[cursor + 2..].find(')') {
                Some(len) => {
                    let name = &input[cursor + 2..cursor + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    cursor += len + 3;
                }
                None => {
                    // An unclosed reference is kept; scanning goes on after the `$(`.
                    out.push_str("$(");
                    cursor += 2;
                }
            },
            _ => {
                out.push('$');
                cursor += 1;
            }
        }
        copied = cursor;
    }
    out.push_str(&input[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::expand;

    fn with(vars: &[(&str, &str)], input: &str) -> String {
        let vars: BTreeMap<&str, &str> = vars.iter().copied().collect();
        expand(input, |name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defined_references_expand_and_unknown_ones_stay_as_written() {
        let vars = [("HOST", "db"), ("PORT", "5432"), ("EMPTY", "")];
        assert_eq!(
            with(&vars, "postgres://$(HOST):$(PORT)/x"),
            "postgres://db:5432/x"
        );
        assert_eq!(with(&vars, "$(MISSING)-$(HOST)"), "$(MISSING)-db");
        assert_eq!(with(&vars, "[$(EMPTY)]"), "[]");
        assert_eq!(with(&vars, "$()"), "$()");
    }

    #[test]
    fn dollar_escapes_and_stray_dollars_follow_kubelet() {
        let vars = [("A", "x")];
        assert_eq!(with(&vars, "$$(A)"), "$(A)");
        assert_eq!(with(&vars, "$$$(A)"), "$x");
        assert_eq!(with(&vars, "$$$$"), "$$");
        assert_eq!(with(&vars, "cost: $5"), "cost: $5");
        assert_eq!(with(&vars, "end$"), "end$");
        assert_eq!(with(&vars, "$"), "$");
        assert_eq!(with(&vars, "$(A"), "$(A");
        assert_eq!(with(&vars, "$($(A)"), "$($(A)");
        assert_eq!(with(&vars, "$(A)$(A)"), "xx");
    }

    #[test]
    fn multibyte_text_around_references_is_kept() {
        assert_eq!(with(&[("N", "é")], "ü$(N)€$ß"), "üé€$ß");
    }
}
