//! CSV splitting shared by every reader of user tables (the `cohort` stage, `orchestrate stats`):
//! one set of quoting rules, and the line each record starts on for error messages.

/// One CSV record with the line it starts on.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based line of the file where the record starts.
    pub row: usize,
    pub fields: Vec<String>,
}

/// Splits `text` into records: comma-separated, `"…"` quoting with `""` for a quote (quoted
/// fields may span lines), `\n` or `\r\n` line ends, blank lines skipped, a leading UTF-8 BOM
/// ignored, unquoted fields trimmed of spaces.
pub fn records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let finish_field = |field: &mut String, quoted: &mut bool, fields: &mut Vec<String>| {
        let f = std::mem::take(field);
        fields.push(if *quoted { f } else { f.trim().to_string() });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !quoted => {
                field.clear();
                in_quotes = true;
                quoted = true;
            }
            '"' => return Err((line, "a quote inside an unquoted field".to_string())),
            ',' => finish_field(&mut field, &mut quoted, &mut fields),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                finish_field(&mut field, &mut quoted, &mut fields);
                let done = std::mem::take(&mut fields);
                if !(done.len() == 1 && done[0].is_empty()) {
                    records.push(Record {
                        row: start,
                        fields: done,
                    });
                }
                line += 1;
                start = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err((start, "a quoted field is never closed".to_string()));
    }
    if !field.is_empty() || quoted || !fields.is_empty() {
        finish_field(&mut field, &mut quoted, &mut fields);
        if !(fields.len() == 1 && fields[0].is_empty()) {
            records.push(Record { row: start, fields });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_handle_quotes_crlf_and_blank_lines() {
        let recs = records("\u{feff}a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"multi\nline\",2\n3,4")
            .expect("parses");
        let rows: Vec<usize> = recs.iter().map(|r| r.row).collect();
        assert_eq!(rows, [1, 2, 4, 6]);
        assert_eq!(recs[1].fields, ["x,1", "say \"hi\""]);
        assert_eq!(recs[2].fields, ["multi\nline", "2"]);
        assert_eq!(recs[3].fields, ["3", "4"]);
        assert!(records("a\n\"open,1\n").is_err());
    }
}
