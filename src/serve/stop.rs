//! Stop sequences over streamed text: text is released as soon as it cannot be the start of
//! a stop sequence, and everything from the first match on is withheld.

/// Scans one choice's text for its stop sequences.
#[derive(Debug, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopScanner {
    /// A scanner for `stops` (empty: everything passes at once).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Adds a piece of text; returns what may be shown now and whether a stop sequence
    /// matched (nothing more is released after that).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.held.push_str(piece);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            self.stopped = true;
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        // Keep back the longest tail that could still grow into a stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_prefix_suffix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// The withheld tail once the text is complete (it did not become a stop sequence).
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest proper prefix of `stop` that `text` ends with.
fn longest_prefix_suffix(text: &str, stop: &str) -> usize {
    stop.char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .filter(|&i| text.ends_with(&stop[..i]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_passes_until_a_stop_sequence() {
        let mut s = StopScanner::new(vec!["\n\n".into(), "END".into()]);
        assert_eq!(s.push("Hello"), ("Hello".into(), false));
        assert_eq!(s.push(" wor"), (" wor".into(), false));
        // "E" could start "END": held back.
        assert_eq!(s.push("ld E"), ("ld ".into(), false));
        assert_eq!(s.push("ND more"), (String::new(), true));
        assert_eq!(s.push("x"), (String::new(), true));
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn a_held_tail_is_released_when_it_goes_elsewhere_or_ends() {
        let mut s = StopScanner::new(vec!["END".into()]);
        assert_eq!(s.push("aEN"), ("a".into(), false));
        assert_eq!(s.push("x"), ("ENx".into(), false));
        assert_eq!(s.push("E"), (String::new(), false));
        assert_eq!(s.finish(), "E");
        let mut none = StopScanner::new(Vec::new());
        assert_eq!(none.push("é"), ("é".into(), false));
    }

    #[test]
    fn multibyte_stops_cut_on_character_boundaries() {
        let mut s = StopScanner::new(vec!["«»".into()]);
        assert_eq!(s.push("a«"), ("a".into(), false));
        assert_eq!(s.push("»b"), (String::new(), true));
    }
}
