//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template`, rendered with
//! minijinja (plus Python-style string methods that real templates use) exactly as the model's
//! authors wrote it — ChatML for SmolLM2, and whatever Qwen or Gemma instruct files bring.
//!
//! A template is a program from the file, so every render is bounded: minijinja's fuel limits
//! the instructions it runs and the data it creates ([`render_fuel`]), and the text it writes
//! is capped ([`max_output`]); a template that loops or grows without end fails with
//! [`LlmError::Template`] in well under a second instead of hanging the worker that renders it.

use candle_core::quantized::gguf_file::{Content, Value};
use std::io::Write;

use minijinja::{Environment, ErrorKind, context};

use super::{GgufTokenizer, LlmError, gguf};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
}

/// A chat template from GGUF metadata, compiled once.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

/// Fuel every render gets whatever its input: real templates (ChatML, Llama 3, Qwen with tool
/// descriptions, Gemma) spend a few thousand on a short conversation. It also caps the data a
/// template may create at about 32 MB (minijinja refuses `'x' * 100000000` up front).
const BASE_FUEL: u64 = 500_000;
/// Fuel per message (a template loops over them, a few dozen steps each).
const MESSAGE_FUEL: u64 = 2_000;
/// Output every render may write beyond twice its messages (system prompts, role markers).
const OUTPUT_SLACK: usize = 1 << 20;

/// Fuel for rendering `messages` messages of `input` bytes in all: [`BASE_FUEL`], plus
/// [`MESSAGE_FUEL`] per message, plus one per 8 bytes (minijinja charges one per 64 bytes of
/// data it creates, so a template may copy its input several times).
pub fn render_fuel(messages: usize, input: usize) -> u64 {
    BASE_FUEL
        .saturating_add(MESSAGE_FUEL.saturating_mul(messages as u64))
        .saturating_add(input as u64 / 8)
}

/// Most bytes a render of messages of `input` bytes may write.
pub fn max_output(input: usize) -> usize {
    input.saturating_mul(2).saturating_add(OUTPUT_SLACK)
}

/// A writer that refuses to grow past `cap` bytes (and remembers that it did).
struct Capped {
    out: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other(
                "the chat template's output is too long",
            ));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChatTemplate {
    /// Reads and compiles `tokenizer.chat_template`; `Ok(None)` for models without one (base
    /// models such as Gemma 3 270M), which then offer Continue mode only.
    pub fn from_gguf(content: &Content, _tok: &GgufTokenizer) -> Result<Option<Self>, LlmError> {
        let Some(source) = gguf::metadata_string(content, "tokenizer.chat_template") else {
            return Ok(None);
        };
        let piece = |key: &str| -> String {
            let id = gguf::metadata_u64(content, key);
            match (id, content.metadata.get("tokenizer.ggml.tokens")) {
                (Some(id), Some(Value::Array(tokens))) => match tokens.get(id as usize) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        };
        Self::compile(
            source,
            piece("tokenizer.ggml.bos_token_id"),
            piece("tokenizer.ggml.eos_token_id"),
        )
        .map(Some)
    }

    /// Compiles a template from source with the given BOS/EOS texts.
    pub fn compile(source: String, bos_token: String, eos_token: String) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String {
            // Templates use it for "today's date" in system prompts; a fixed, neutral value
            // keeps renders reproducible.
            String::new()
        });
        env.add_template_owned(NAME, source).map_err(|e| {
            LlmError::Template(format!("the model's chat template does not compile: {e}"))
        })?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders the conversation, ending with the assistant's turn opened, within the fuel and
    /// output bounds of [`render_fuel`] and [`max_output`].
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let input = messages
            .iter()
            .map(|m| m.role.len() + m.content.len())
            .sum::<usize>()
            .saturating_add(self.bos_token.len() + self.eos_token.len());
        // Fuel is set per environment: a clone shares the compiled template.
        let mut env = self.env.clone();
        let fuel = render_fuel(messages.len(), input);
        env.set_fuel(Some(fuel));
        let tmpl = env
            .get_template(NAME)
            .map_err(|e| LlmError::Template(e.to_string()))?;
        let mut out = Capped {
            out: Vec::new(),
            cap: max_output(input),
            overflowed: false,
        };
        let rendered = tmpl.render_captured_to(
            context! {
                messages => minijinja::Value::from(
                    messages
                        .iter()
                        .map(|m| context! { role => &m.role, content => &m.content })
                        .collect::<Vec<_>>()
                ),
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            },
            &mut out,
        );
        match rendered {
            Err(_) if out.overflowed => Err(LlmError::Template(format!(
                "the model's chat template wrote more than {} bytes and was stopped",
                out.cap
            ))),
            Ok(_) => String::from_utf8(out.out)
                .map_err(|_| LlmError::Template("rendering produced invalid UTF-8".into())),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(LlmError::Template(format!(
                "the model's chat template did too much work (over {fuel} steps) and was stopped"
            ))),
            Err(e) => Err(LlmError::Template(format!("rendering failed: {e}"))),
        }
    }

    /// The BOS text the template may emit itself (so the caller does not add a second BOS).
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::compile(CHATML.into(), String::new(), "<|im_end|>".into()).unwrap();
        let s = t
            .render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")])
            .unwrap();
        assert_eq!(
            s,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception() {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}{{ messages[0]['content'].strip() }}";
        let t = ChatTemplate::compile(src.into(), String::new(), String::new()).unwrap();
        assert_eq!(t.render(&[ChatMessage::user("  x  ")]).unwrap(), "x");
        let err = t.render(&[ChatMessage::system("s")]).unwrap_err();
        assert!(err.to_string().contains("user first"), "{err}");
    }

    /// Renders `src` on a background thread; `None` if it has not finished after `limit` (a
    /// hang must fail the test, not stall it).
    fn render_within(src: &str, limit: std::time::Duration) -> Option<Result<String, LlmError>> {
        let t = ChatTemplate::compile(src.into(), String::new(), String::new()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("template-test".into())
            .spawn(move || {
                let _ = tx.send(t.render(&[ChatMessage::user("Hi")]));
            })
            .unwrap();
        rx.recv_timeout(limit).ok()
    }

    #[test]
    fn hostile_templates_stop_with_an_error() {
        // Each would run for hours or take gigabytes without the bounds. 5 s is a hang
        // detector for a loaded 2-core CI machine, not a speed claim (BENCHMARKS.md has the
        // times: tens of milliseconds).
        let limit = std::time::Duration::from_secs(5);
        for src in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            "{% set s = 'x' * 10000000 %}{% for i in range(100) %}{{ s }}{% endfor %}",
            "{% for i in range(100000) %}{{ 'abcdefgh' * 100 }}{% endfor %}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        ] {
            let started = std::time::Instant::now();
            let result =
                render_within(src, limit).unwrap_or_else(|| panic!("{src}: still running"));
            let err = result.expect_err(src).to_string();
            assert!(err.starts_with("chat template:"), "{src}: {err}");
            eprintln!(
                "{:>7.1} ms  {err}  ({src})",
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    }

    #[test]
    fn output_is_capped_by_the_conversation_size() {
        // Within the fuel but past the output cap: 1 MiB slack plus twice the input.
        let src = "{% for i in range(3000) %}{{ 'y' * 1000 }}{% endfor %}";
        let err = render_within(src, std::time::Duration::from_secs(5))
            .expect("finished")
            .expect_err("capped");
        assert!(err.to_string().contains("more than"), "{err}");
        // A long conversation through a real template is not.
        let t = ChatTemplate::compile(CHATML.into(), String::new(), String::new()).unwrap();
        let long = "word ".repeat(400_000);
        let out = t.render(&[ChatMessage::user(long.clone())]).unwrap();
        assert!(out.contains(&long));
        // Nor is a long one of many messages.
        let many: Vec<_> = (0..5000)
            .map(|i| ChatMessage::user(format!("message {i}")))
            .collect();
        assert!(t.render(&many).unwrap().contains("message 4999"));
    }

    #[test]
    fn broken_template_is_a_clear_error() {
        let err = ChatTemplate::compile("{% for %}".into(), String::new(), String::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not compile"));
    }
}
