//! Diagnostics with source spans, and their plain-text rendering.
//!
//! The loader collects every problem in one pass; the binary prints them. The
//! rendering is a pure function of the source text, so it lives here and is
//! tested with golden files.

use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a file: where, what was found, what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Byte range in the source.
    pub span: Range<usize>,
    pub message: String,
    /// What would be accepted here.
    pub expected: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            expected: None,
        }
    }
    pub fn warning(span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            expected: None,
        }
    }
    pub fn expected(mut self, e: impl Into<String>) -> Diagnostic {
        self.expected = Some(e.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset.min(src.len()));
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Render one diagnostic the way compilers do:
///
/// ```text
/// error: shares add up to 90%, not 100%
///   --> agreement.toml:12:11
///    |
/// 12 |   split = { JP = "60%", US = "30%" }
///    |           ^^^^^^^^^^^^^^^^^^^^^^^^^^
///    = expected: party shares that add up to exactly 100%
/// ```
/// Longest source line shown whole, in characters.
const WINDOW: usize = 160;

pub fn render(d: &Diagnostic, file: &str, src: &str) -> String {
    let (line, col) = line_col(src, d.span.start);
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = format!("{kind}: {}\n", d.message);
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    out.push_str(&format!("{pad}--> {file}:{line}:{col}\n"));
    let line_start = src[..floor_char_boundary(src, d.span.start.min(src.len()))]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let line_end = src[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(src.len());
    let text = src[line_start..line_end].trim_end_matches('\r');
    let start = floor_char_boundary(src, d.span.start.min(src.len()));
    let end = floor_char_boundary(src, d.span.end.min(line_end).max(start));
    // a long line is shown as a window around the caret, so that output
    // stays proportional to the number of problems, not to their lines
    let caret = src[line_start..start].chars().count();
    let len = text.chars().count();
    let (from, to) = if len > WINDOW {
        let from = caret.saturating_sub(WINDOW / 3).min(len - WINDOW);
        (from, from + WINDOW)
    } else {
        (0, len)
    };
    let shown: String = text.chars().skip(from).take(to - from).collect();
    let (pre, post) = (if from > 0 { "…" } else { "" }, if to < len { "…" } else { "" });
    out.push_str(&format!("{pad} |\n{line} | {pre}{shown}{post}\n"));
    let lead = src[line_start..start]
        .chars()
        .skip(from)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect::<String>();
    let width = src[start..end].chars().count().clamp(1, (to - caret.min(to)).max(1));
    out.push_str(&format!(
        "{pad} | {}{lead}{}\n",
        if from > 0 { " " } else { "" },
        "^".repeat(width)
    ));
    if let Some(e) = &d.expected {
        out.push_str(&format!("{pad} = expected: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_caret() {
        let src = format!(
            "k = {{ {} }}\n",
            (0..2000).map(|i| format!("P{i} = 1")).collect::<Vec<_>>().join(", ")
        );
        let at = src.find("P1500").unwrap();
        let d = Diagnostic::error(at..at + 5, "unknown party `P1500`");
        let r = render(&d, "a.toml", &src);
        let lines: Vec<&str> = r.lines().collect();
        assert!(lines[3].chars().count() < WINDOW + 20, "{}", lines[3]);
        assert!(
            lines[3].starts_with("1 | …") && lines[3].contains("P1500") && lines[3].ends_with("…"),
            "{}",
            lines[3]
        );
        let col = |l: &str, pat: &str| l.find(pat).map(|b| l[..b].chars().count());
        assert_eq!(
            col(lines[3], "P1500"),
            col(lines[4], "^^^^^"),
            "the caret under the span:\n{r}"
        );
    }

    #[test]
    fn positions() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        let off = src.find('"').unwrap();
        assert_eq!(line_col(src, off), (2, 6));
    }

    #[test]
    fn rendering() {
        let src = "[agreement]\nid = 5\n";
        let d = Diagnostic::error(17..18, "`id` must be a string").expected("a string such as \"my-agreement\"");
        let r = render(&d, "a.toml", src);
        assert_eq!(
            r,
            "error: `id` must be a string\n --> a.toml:2:6\n  |\n2 | id = 5\n  |      ^\n  = expected: a string such as \"my-agreement\"\n"
        );
    }
}
