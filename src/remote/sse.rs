//! Server-sent events (the `text/event-stream` format of the HTML standard) read from a byte
//! stream with a size limit: a line or an event larger than the limit is an error as soon as
//! that many bytes have arrived, so a server that never sends a blank line cannot make the
//! client buffer without end.
//!
//! Only `data` fields matter to the OpenAI API: each event is its data lines joined by `\n`;
//! comments, `event`, `id` and `retry` are skipped; an event cut off by the end of the stream
//! is dropped, as the standard says.

use std::collections::VecDeque;

/// Why a stream is not a usable event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event (or one line) grew past the limit without ending.
    #[error("an event is larger than {limit} bytes without ending (no blank line)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A data line is not UTF-8.
    #[error("an event is not UTF-8 text")]
    NotUtf8,
}

/// Splits bytes into events' data, holding at most `limit` bytes of an unfinished event.
#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    /// The current line, not yet ended.
    line: Vec<u8>,
    /// The data of the current event so far.
    data: String,
    /// Whether the current event has a data field yet (its data may be empty).
    has_data: bool,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    /// Complete events not yet taken.
    ready: VecDeque<String>,
}

impl SseParser {
    /// A parser that refuses events (and lines) over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            after_cr: false,
            ready: VecDeque::new(),
        }
    }

    /// The next complete event's data, if one has arrived.
    pub fn next_event(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    /// Adds bytes from the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr && rest[0] == b'\n' {
                rest = &rest[1..];
                self.after_cr = false;
                continue;
            }
            self.after_cr = false;
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.push_line_bytes(&rest[..end])?;
                    self.after_cr = rest[end] == b'\r';
                    self.end_line()?;
                    rest = &rest[end + 1..];
                }
                None => {
                    self.push_line_bytes(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// Bytes of the current line, within the limit (counted with the event's data so far).
    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        let held = self
            .line
            .len()
            .saturating_add(self.data.len())
            .saturating_add(bytes.len());
        if held > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// A line ended: a blank one dispatches the event, a `data` line adds to it.
    fn end_line(&mut self) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                self.ready.push_back(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(()), // a comment (keep-alive)
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            let text = std::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?;
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(text);
            self.has_data = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]], limit: usize) -> Result<Vec<String>, SseError> {
        let mut p = SseParser::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c)?;
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        Ok(out)
    }

    #[test]
    fn events_end_at_blank_lines_in_any_line_ending_and_any_split() {
        let text = b"data: {\"a\":1}\n\n: keep-alive\r\n\r\nevent: x\rdata: two\rdata:lines\r\rdata: [DONE]\r\n\r\ndata: cut";
        let whole = events(&[text], 1024).unwrap();
        assert_eq!(whole, ["{\"a\":1}", "two\nlines", "[DONE]"]);
        // Byte by byte: the same events (a \r\n split across chunks ends one line).
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(events(&bytes, 1024).unwrap(), whole);
    }

    #[test]
    fn an_event_without_end_is_refused_at_the_limit() {
        let long = vec![b'a'; 5000];
        let err = events(&[b"data: ", &long], 4096).unwrap_err();
        assert_eq!(err, SseError::TooLarge { limit: 4096 });
        // Many short lines without a blank one count together.
        let lines = b"data: 0123456789\n".repeat(500);
        assert!(events(&[&lines], 4096).is_err());
        // The limit applies per event.
        let ok = b"data: 0123456789\n\n".repeat(300);
        assert_eq!(events(&[&ok], 64).unwrap().len(), 300);
        assert_eq!(
            events(&[b"data: \xff\n\n"], 64).unwrap_err(),
            SseError::NotUtf8
        );
    }
}
