//! One document: its file format, its title, exports and the writer's word count.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use crate::fsutil::atomic_write;

/// One document: what is serialized to `documents/<id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id (also the file name).
    pub id: String,
    /// Title shown in the list (empty: the first line is shown instead).
    #[serde(default)]
    pub title: String,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub created: u64,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub modified: u64,
    /// Where "Save As…" last wrote it, for Ctrl+S.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Document {
    /// The title, or the first words of the text, or "Untitled".
    pub fn display_title(&self) -> String {
        if !self.title.trim().is_empty() {
            return self.title.trim().to_string();
        }
        let first = self.text.lines().map(str::trim).find(|l| !l.is_empty());
        match first {
            Some(line) if line.chars().count() > 40 => {
                let cut: String = line.chars().take(38).collect();
                format!("{}…", cut.trim_end())
            }
            Some(line) => line.to_string(),
            None => "Untitled".into(),
        }
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Markdown: the title as a heading, then the text.
    Markdown,
    /// Plain text, exactly as written.
    PlainText,
}

impl ExportFormat {
    /// The format a file name asks for (.md / .markdown → Markdown, anything else → text).
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
        {
            Some(e) if e == "md" || e == "markdown" => Self::Markdown,
            _ => Self::PlainText,
        }
    }

    /// The file extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::PlainText => "txt",
        }
    }

    /// The bytes of `doc` in this format.
    pub fn render(self, doc: &Document) -> String {
        match self {
            Self::PlainText => doc.text.clone(),
            Self::Markdown => {
                let title = doc.title.trim();
                if title.is_empty() || doc.text.trim_start().starts_with('#') {
                    doc.text.clone()
                } else {
                    format!("# {title}\n\n{}", doc.text)
                }
            }
        }
    }
}

/// Writes `doc` to `path` atomically in `format` (a copy; the store keeps its own).
pub fn export_document(
    doc: &Document,
    path: &Path,
    format: ExportFormat,
) -> Result<(), StoreError> {
    atomic_write(path, format.render(doc).as_bytes()).map_err(|source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Counts words the way writers do: runs of letters, digits or apostrophes.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// Title of the document created on first start.
pub const WELCOME_TITLE: &str = "The lighthouse";
/// Text of the document created on first start: a paragraph worth continuing.
pub const WELCOME_TEXT: &str = "The lighthouse keeper had not spoken to anyone in eleven days. \
Each evening she climbed the spiral stairs, wound the great clockwork, and watched the beam \
sweep across the black water. On the twelfth evening, a light answered from the sea.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(word_count(""), 0);
        assert_eq!(word_count("  one two\nthree — four "), 4);
        assert_eq!(word_count("don't stop"), 2);
    }

    #[test]
    fn display_title_falls_back_to_first_line() {
        let mut d = Document {
            id: "x".into(),
            title: String::new(),
            text: "\n  First line here\nsecond".into(),
            created: 0,
            modified: 0,
            file: None,
        };
        assert_eq!(d.display_title(), "First line here");
        d.text.clear();
        assert_eq!(d.display_title(), "Untitled");
        d.title = "Named".into();
        assert_eq!(d.display_title(), "Named");
    }

    #[test]
    fn markdown_export_adds_title() {
        let d = Document {
            id: "x".into(),
            title: "Story".into(),
            text: "Once.".into(),
            created: 0,
            modified: 0,
            file: None,
        };
        assert_eq!(ExportFormat::Markdown.render(&d), "# Story\n\nOnce.");
        assert_eq!(ExportFormat::PlainText.render(&d), "Once.");
        assert_eq!(
            ExportFormat::from_path(Path::new("a/b.MD")),
            ExportFormat::Markdown
        );
    }
}
