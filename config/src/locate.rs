//! Finds the line and column of a key path (`spec.outputPorts[0].commit.interval`) in
//! block-style YAML, so errors found after parsing (cross-field checks) point at the right
//! place. serde positions only the errors it raises itself.

/// 1-based (line, column) of the deepest part of `path` that can be found, or (0, 0).
pub fn locate(text: &str, path: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = (0, 0);
    let mut start = 0usize;
    let mut parent_indent: isize = -1;
    for segment in segments(path) {
        let hit = match segment {
            Segment::Key(key) => find_key(&lines, start, parent_indent, key),
            Segment::Index(i) => find_item(&lines, start, parent_indent, i),
        };
        match hit {
            Some((line, col)) => {
                found = (line + 1, col + 1);
                start = line;
                parent_indent = col as isize;
                if let Segment::Index(_) = segment {
                    // Keys of a sequence item sit at the item's content column.
                    parent_indent = col as isize - 1;
                }
            }
            None => break,
        }
    }
    found
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// A key deeper than `parent_indent`, before the block of the parent ends.
fn find_key(
    lines: &[&str],
    start: usize,
    parent_indent: isize,
    key: &str,
) -> Option<(usize, usize)> {
    for (n, line) in lines.iter().enumerate().skip(start) {
        if !is_content(line) {
            continue;
        }
        let indent = indent_of(line);
        if n > start && (indent as isize) <= parent_indent && !line.trim_start().starts_with("- ") {
            return None;
        }
        // `- key:` on a sequence item line, or `key:` on its own.
        let body = &line[indent..];
        let (offset, body) = match body.strip_prefix("- ") {
            Some(rest) => (indent + 2, rest),
            None => (indent, body),
        };
        if (offset as isize) <= parent_indent && n > start {
            continue;
        }
        if body.starts_with(key) && body[key.len()..].trim_start().starts_with(':') {
            return Some((n, offset));
        }
    }
    None
}

/// The `index`-th `- ` item of the sequence under the current key.
fn find_item(
    lines: &[&str],
    start: usize,
    parent_indent: isize,
    index: usize,
) -> Option<(usize, usize)> {
    let mut seen = 0usize;
    let mut item_indent = None;
    for (n, line) in lines.iter().enumerate().skip(start + 1) {
        if !is_content(line) {
            continue;
        }
        let indent = indent_of(line);
        let is_item = line[indent..].starts_with("- ") || line[indent..] == *"-";
        if (indent as isize) < parent_indent || ((indent as isize) == parent_indent && !is_item) {
            return None;
        }
        if is_item && item_indent.is_none_or(|i| i == indent) {
            item_indent = Some(indent);
            if seen == index {
                return Some((n, indent + 2));
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: x\nspec:\n  inputPorts:\n    - type: kafka-topic\n      source: a\n  outputPorts:\n    - type: iceberg-table\n      sla:\n        freshness: \"15min\"\n    - type: iceberg-table\n      commit:\n        interval: 1h\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, "spec.outputPorts[0].sla.freshness"), (9, 9));
        assert_eq!(locate(DOC, "spec.outputPorts[1].commit.interval"), (12, 9));
        assert_eq!(locate(DOC, "spec.inputPorts[0].source"), (5, 7));
        // Unknown tails fall back to the deepest known part.
        assert_eq!(locate(DOC, "spec.outputPorts[1].nothing"), (10, 7));
    }
}
