//! Text building blocks: CSV quoting and aligned tables for people.

/// Append one CSV field: quoted only when it holds a comma, a double quote,
/// CR or LF (quotes doubled).
pub fn csv_field(out: &mut String, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Append one CSV record ending with LF.
pub fn csv_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f.as_ref());
    }
    out.push('\n');
}

/// Column alignment of a table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain aligned text table for people.
pub struct Table {
    pub headers: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<String>>,
    /// Indices of rows after which a rule is drawn.
    pub rules_after: Vec<usize>,
}

impl Table {
    pub fn new(headers: &[&str], align: &[Align]) -> Table {
        Table {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            align: align.to_vec(),
            rows: Vec::new(),
            rules_after: Vec::new(),
        }
    }

    /// A row; a cell holding a control character is shown with it escaped
    /// ([`costshare_core::costs::shown_text`]).
    pub fn push(&mut self, mut row: Vec<String>) {
        for c in &mut row {
            if let std::borrow::Cow::Owned(shown) = costshare_core::costs::shown_text(c) {
                *c = shown;
            }
        }
        self.rows.push(row);
    }

    pub fn rule(&mut self) {
        if !self.rows.is_empty() {
            self.rules_after.push(self.rows.len() - 1);
        }
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let width = |s: &str| s.chars().count();
        let mut w: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(width(c));
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for (i, wi) in w.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = wi - width(c);
                if i > 0 {
                    s.push_str("  ");
                }
                match self.align.get(i).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        s.push_str(c);
                        if i + 1 < n {
                            s.push_str(&" ".repeat(pad));
                        }
                    }
                    Align::Right => {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(c);
                    }
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let total_w: usize = w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        let mut out = line(&self.headers);
        out.push_str(&"-".repeat(total_w));
        out.push('\n');
        for (i, r) in self.rows.iter().enumerate() {
            out.push_str(&line(r));
            if self.rules_after.contains(&i) && i + 1 < self.rows.len() {
                out.push_str(&"-".repeat(total_w));
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut s = String::new();
        csv_record(&mut s, &["a,1", "b\"2", "plain", "x\ny", ""]);
        assert_eq!(s, "\"a,1\",\"b\"\"2\",plain,\"x\ny\",\n");
    }

    #[test]
    fn table() {
        let mut t = Table::new(&["party", "amount"], &[Align::Left, Align::Right]);
        t.push(vec!["JP".into(), "1,000".into()]);
        t.push(vec!["UNALLOCATED".into(), "5".into()]);
        assert_eq!(
            t.render(),
            "party        amount\n-------------------\nJP            1,000\nUNALLOCATED       5\n"
        );
    }
}
