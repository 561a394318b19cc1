//! Multi-document YAML split into its documents' exact text, so documents that are not
//! converted are written back byte for byte, comments included.

/// One document: the `---` line that opened it (empty for a first document without one) and
/// its text up to the next separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDoc {
    pub separator: String,
    pub body: String,
}

fn is_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("---") else {
        return false;
    };
    let rest = rest.trim_end_matches(['\n', '\r']);
    rest.is_empty()
        || rest.starts_with([' ', '\t']) && rest.trim_start().is_empty()
        || rest.trim_start().starts_with('#')
}

/// Splits a file; `join(split(t)) == t` for every input.
pub fn split(text: &str) -> Vec<RawDoc> {
    let mut docs = vec![RawDoc {
        separator: String::new(),
        body: String::new(),
    }];
    for line in text.split_inclusive('\n') {
        if is_separator(line) {
            docs.push(RawDoc {
                separator: line.to_string(),
                body: String::new(),
            });
        } else {
            docs.last_mut()
                .expect("at least one document")
                .body
                .push_str(line);
        }
    }
    if docs.len() > 1
        && docs[0].body.trim().is_empty()
        && docs[0].separator.is_empty()
        && docs[0].body.lines().all(|l| l.trim().is_empty())
    {
        // only blank lines before the first separator: keep them attached to it
        let lead = docs.remove(0).body;
        docs[0].separator = format!("{lead}{}", docs[0].separator);
    }
    docs
}

pub fn join(docs: &[RawDoc]) -> String {
    docs.iter()
        .map(|d| format!("{}{}", d.separator, d.body))
        .collect()
}

/// Whether a document holds nothing but comments and blank lines.
pub fn is_empty(body: &str) -> bool {
    body.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_are_inverse() {
        for text in [
            "",
            "a: 1\n",
            "---\na: 1\n---\nb: 2\n",
            "# head comment\napiVersion: v1\n--- # second\nkind: X\n...\n---\n\n",
            "a: 1\n---\r\nb: 2",
            "\n\n---\na: 1\n",
        ] {
            assert_eq!(join(&split(text)), text, "{text:?}");
        }
    }

    #[test]
    fn documents_are_found_with_their_comments() {
        let docs = split("# top\na: 1\n---  # two\n# about b\nb: 2\n---\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].body, "# top\na: 1\n");
        assert_eq!(
            (docs[1].separator.as_str(), docs[1].body.as_str()),
            ("---  # two\n", "# about b\nb: 2\n")
        );
        assert!(is_empty(&docs[2].body));
        let not_a_separator = split("text: |\n  ----\n  ---x\n");
        assert_eq!(not_a_separator.len(), 1);
    }
}
