//! The writing to learn from: `.txt`/`.md` files and Atelier documents, read as a stream of
//! paragraphs (bounded memory whatever the file's size), tokenised with the model's own
//! tokenizer, the last ~10% of each source's paragraphs held out for validation, and the whole
//! capped at a token budget (a 2 GB file is read only as far as the budget goes).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::models::llm::GgufTokenizer;

/// Tokens read at most, training and validation together, unless the configuration says
/// otherwise: 4 million (about 16 MB of English prose; several hours per epoch on two cores).
pub const DEFAULT_TOKEN_BUDGET: usize = 4_000_000;

/// A paragraph longer than this (bytes) is cut at the next line end, so verse and text without
/// blank lines still splits into units the hold-out can take from.
const MAX_PARAGRAPH: usize = 2048;
/// Bytes read per line at most (a file without line ends is read in pieces of this size).
const MAX_LINE: u64 = 64 * 1024;

/// Where writing comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TextSource {
    /// A plain-text or Markdown file.
    File {
        /// Its path.
        path: PathBuf,
    },
    /// An Atelier document (`documents/<id>.json` in the data folder).
    Document {
        /// The data folder.
        data_dir: PathBuf,
        /// The document's id.
        id: String,
    },
}

impl TextSource {
    /// A short name for messages and the run's record.
    pub fn label(&self) -> String {
        match self {
            TextSource::File { path } => path.display().to_string(),
            TextSource::Document { id, .. } => format!("document {id}"),
        }
    }
}

/// What could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file holds NUL bytes: not text.
    #[error("{} is not a text file (it holds NUL bytes); give .txt or .md files", path.display())]
    Binary { path: PathBuf },
    /// A document could not be read as an Atelier document.
    #[error("{} is not a readable Atelier document: {detail}", path.display())]
    Document { path: PathBuf, detail: String },
    /// The tokenizer failed.
    #[error("{0}")]
    Tokenizer(String),
    /// The job was stopped while reading.
    #[error("stopped")]
    Stopped,
}

/// How much one source gave.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceSummary {
    /// [`TextSource::label`].
    pub label: String,
    /// Paragraphs read.
    pub paragraphs: usize,
    /// Tokens that went to training.
    pub train_tokens: usize,
    /// Tokens held out for validation.
    pub val_tokens: usize,
    /// Whether the budget ran out inside this source (its end was not read).
    pub truncated: bool,
}

/// The tokenised writing.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// Training tokens, every source's training paragraphs in order.
    pub train: Vec<u32>,
    /// Held-out tokens, every source's last paragraphs in order.
    pub val: Vec<u32>,
    /// Per source.
    pub sources: Vec<SourceSummary>,
    /// Whether the budget stopped the reading early.
    pub truncated: bool,
}

impl Corpus {
    /// A fingerprint of the tokens (FNV-1a), so a resumed run can tell that its text changed.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &t in self.train.iter().chain(&[u32::MAX]).chain(&self.val) {
            for b in t.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// Splits a stream of lines into paragraphs: blank lines end one, and so does
/// [`MAX_PARAGRAPH`] bytes at a line end. Lines keep their `\n` (CRLF becomes LF); a paragraph
/// that a blank line ended gets one more `\n`.
struct Paragraphs<R> {
    reader: R,
    path: PathBuf,
    line: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Paragraphs<R> {
    fn new(reader: R, path: &Path) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            line: Vec::new(),
            done: false,
        }
    }

    fn next_paragraph(&mut self) -> Result<Option<String>, TextError> {
        let mut para = String::new();
        while !self.done {
            self.line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut self.line)
                .map_err(|source| TextError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                self.done = true;
                break;
            }
            if self.line.contains(&0) {
                return Err(TextError::Binary {
                    path: self.path.clone(),
                });
            }
            let text = String::from_utf8_lossy(&self.line);
            let text = text.strip_suffix("\r\n").map_or(text.as_ref(), |t| t);
            if text.trim().is_empty() {
                if !para.trim().is_empty() {
                    para.push('\n');
                    return Ok(Some(para));
                }
                continue;
            }
            para.push_str(text.trim_end_matches('\r'));
            if !para.ends_with('\n') && self.line.ends_with(b"\n") {
                para.push('\n');
            }
            if para.len() >= MAX_PARAGRAPH && para.ends_with('\n') {
                return Ok(Some(para));
            }
        }
        Ok((!para.trim().is_empty()).then_some(para))
    }
}

/// Reads `sources` in order and tokenises them, paragraph by paragraph, until `budget` tokens;
/// the last `holdout` share (by paragraphs, at least one where a source has two or more) of
/// each source goes to validation. `pause` is called between paragraphs (a job's yield point).
pub fn read_corpus(
    sources: &[TextSource],
    tokenizer: &GgufTokenizer,
    budget: usize,
    holdout: f64,
    pause: &dyn Fn() -> Result<(), crate::long_job::Stopped>,
) -> Result<Corpus, TextError> {
    let mut corpus = Corpus::default();
    let mut used = 0usize;
    for source in sources {
        if used >= budget {
            corpus.truncated = true;
            corpus.sources.push(SourceSummary {
                label: source.label(),
                paragraphs: 0,
                train_tokens: 0,
                val_tokens: 0,
                truncated: true,
            });
            continue;
        }
        let mut paragraphs: Vec<Vec<u32>> = Vec::new();
        let mut truncated = false;
        let mut take = |text: &str| -> Result<bool, TextError> {
            pause().map_err(|_| TextError::Stopped)?;
            let ids = tokenizer
                .encode(text, false)
                .map_err(|e| TextError::Tokenizer(e.to_string()))?;
            used += ids.len();
            paragraphs.push(ids);
            Ok(used < budget)
        };
        match source {
            TextSource::File { path } => {
                let file = std::fs::File::open(path).map_err(|source| TextError::Io {
                    path: path.clone(),
                    source,
                })?;
                let mut paras = Paragraphs::new(BufReader::new(file), path);
                while let Some(p) = paras.next_paragraph()? {
                    if !take(&p)? {
                        truncated = paras.next_paragraph()?.is_some();
                        break;
                    }
                }
            }
            TextSource::Document { data_dir, id } => {
                let text = read_document(data_dir, id)?;
                let path = PathBuf::from(id);
                let mut paras = Paragraphs::new(text.as_bytes(), &path);
                while let Some(p) = paras.next_paragraph()? {
                    if !take(&p)? {
                        truncated = paras.next_paragraph()?.is_some();
                        break;
                    }
                }
            }
        }
        let n = paragraphs.len();
        let held = if n >= 2 {
            ((n as f64 * holdout).round() as usize).clamp(1, n - 1)
        } else {
            0
        };
        let mut summary = SourceSummary {
            label: source.label(),
            paragraphs: n,
            train_tokens: 0,
            val_tokens: 0,
            truncated,
        };
        for (i, p) in paragraphs.into_iter().enumerate() {
            if i < n - held {
                summary.train_tokens += p.len();
                corpus.train.extend(p);
            } else {
                summary.val_tokens += p.len();
                corpus.val.extend(p);
            }
        }
        corpus.truncated |= truncated;
        corpus.sources.push(summary);
    }
    Ok(corpus)
}

/// The text of an Atelier document, read through the store's own type.
fn read_document(data_dir: &Path, id: &str) -> Result<String, TextError> {
    let path = data_dir
        .join(crate::store::DOCUMENTS_DIR)
        .join(format!("{id}.json"));
    let bytes = std::fs::read(&path).map_err(|source| TextError::Io {
        path: path.clone(),
        source,
    })?;
    let doc: crate::store::Document =
        serde_json::from_slice(&bytes).map_err(|e| TextError::Document {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    Ok(doc.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraphs(text: &str) -> Vec<String> {
        let mut p = Paragraphs::new(text.as_bytes(), Path::new("t"));
        std::iter::from_fn(|| p.next_paragraph().expect("read")).collect()
    }

    #[test]
    fn blank_lines_split_paragraphs_and_long_ones_are_cut_at_line_ends() {
        let got = paragraphs("One\r\ntwo.\n\n\n  Three\n   \nfour");
        assert_eq!(got, vec!["One\ntwo.\n\n", "  Three\n\n", "four"]);
        let verse: String = (0..200)
            .map(|i| format!("line number {i} of the verse\n"))
            .collect();
        let got = paragraphs(&verse);
        assert!(got.len() > 2, "{}", got.len());
        assert!(
            got.iter()
                .all(|p| p.len() < MAX_PARAGRAPH + 64 && p.ends_with('\n'))
        );
        assert_eq!(got.concat(), verse);
    }

    #[test]
    fn nul_bytes_mean_a_binary_file() {
        let mut p = Paragraphs::new(&b"text\n\0\0\0"[..], Path::new("x.bin"));
        assert!(p.next_paragraph().is_err() || p.next_paragraph().is_err());
    }
}
