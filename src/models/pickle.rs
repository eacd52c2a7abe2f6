//! A restricted unpickler for PyTorch zip checkpoints (`torch.save` since 1.6): it rebuilds
//! tensors and plain containers and nothing else.
//!
//! A pickle is a program for a stack machine whose `GLOBAL`/`STACK_GLOBAL` opcodes name any
//! Python callable (`os.system`, `builtins.eval`) for `REDUCE` to call with any arguments. This
//! interpreter knows only the handful of globals a state dict needs and refuses every other one
//! the moment it is named, with [`PickleError::ForbiddenGlobal`]: a Rust interpreter could not
//! run Python anyway, but a checkpoint that asks for code is not a checkpoint we should
//! half-load. Why not `candle_core::pickle`: it records unknown globals as opaque objects and
//! carries on, so a hostile file would load silently instead of being refused, and it reads
//! the zip through its own paths with no bound checks we control.
//!
//! Allowed globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the
//! `torch.*Storage` types. Supported opcodes are those `torch.save` writes (protocol 2) plus
//! the protocol 3–5 framing and short forms; anything else (`INST`, `OBJ`, `EXT*`, ...) is an
//! error naming the opcode.
//!
//! Bounded on hostile input: the values a pickle builds, copies included, are charged to a
//! budget ([`MAX_VALUES`], text by its length), containers nest at most [`MAX_DEPTH`] deep (so
//! that dropping, comparing or copying a value cannot overflow the stack), and a dict's
//! repeated keys are resolved when it is read, not by a scan per insertion.

use std::collections::HashMap;

/// Element types of torch storages (the `torch.*Storage` globals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDType {
    /// `torch.FloatStorage`: f32.
    F32,
    /// `torch.DoubleStorage`: f64.
    F64,
    /// `torch.HalfStorage`: IEEE f16.
    F16,
    /// `torch.BFloat16Storage`: bfloat16.
    BF16,
    /// `torch.LongStorage`: i64.
    I64,
    /// `torch.IntStorage`: i32.
    I32,
    /// `torch.ShortStorage`: i16.
    I16,
    /// `torch.CharStorage`: i8.
    I8,
    /// `torch.ByteStorage`: u8.
    U8,
    /// `torch.BoolStorage`: one byte per element.
    Bool,
}

impl StorageDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }
}

/// Why a pickle was refused.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The pickle names a Python global outside the allowed set; nothing was called.
    #[error(
        "refused: the pickle asks for the Python global `{module}.{name}`, which is not a tensor \
         or a plain container (only torch tensors, storages and OrderedDict are allowed); \
         nothing was executed"
    )]
    ForbiddenGlobal {
        /// Module part, e.g. `os`.
        module: String,
        /// Attribute part, e.g. `system`.
        name: String,
    },
    /// An opcode this reader does not implement (and `torch.save` does not write).
    #[error("unsupported pickle opcode 0x{op:02x} at byte {pos}")]
    UnsupportedOpcode {
        /// The opcode byte.
        op: u8,
        /// Its offset in the pickle.
        pos: usize,
    },
    /// The stream ended in the middle of an opcode or before `STOP`.
    #[error("the pickle is truncated (at byte {pos})")]
    Truncated {
        /// Where the data ran out.
        pos: usize,
    },
    /// Structurally invalid: wrong operand types, stack underflow, bad memo key, ...
    #[error("malformed pickle at byte {pos}: {msg}")]
    Malformed {
        /// Offset of the opcode that failed.
        pos: usize,
        /// What was wrong.
        msg: String,
    },
}

/// The allowed globals, resolved when named.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch.<X>Storage`.
    Storage(StorageDType),
}

/// A reference to a storage: the zip entry `data/<key>` holding `numel` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// Element type.
    pub dtype: StorageDType,
    /// The entry name under `data/`.
    pub key: String,
    /// Elements the storage declares.
    pub numel: usize,
}

/// A tensor view over a storage, as `_rebuild_tensor_v2` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// Where the elements live.
    pub storage: StorageRef,
    /// First element, in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// Values the restricted machine can hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer (pickled longs beyond i64 are refused).
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict or OrderedDict: its pairs in the order the pickle set them. A key set twice
    /// appears twice; the last one holds the value (as in Python), see [`Value::get`].
    Dict(Vec<(Value, Value)>),
    /// One of the allowed globals.
    Global(Global),
    /// A persistent storage reference (`BINPERSID`). Boxed, like the tensor, to keep every
    /// value small (32 bytes): a pickle may hold millions.
    Storage(Box<StorageRef>),
    /// A rebuilt tensor.
    Tensor(Box<TensorRef>),
}

impl Value {
    /// The value for a string key if this is a dict (the last one set).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Stack slots: a value with its nesting depth (0 for scalars, 1 + the deepest item for
/// containers), or a `MARK`.
enum Slot {
    Mark,
    Val(Value, u32),
}

/// Runs `data` through the restricted machine and returns the unpickled object.
pub fn unpickle(data: &[u8]) -> Result<Value, PickleError> {
    Machine {
        data,
        pos: 0,
        op_pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        values_left: MAX_VALUES,
    }
    .run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed, for error messages.
    op_pos: usize,
    stack: Vec<Slot>,
    /// Memo entries (with their depth) are copies, not aliases: a container memoized and later
    /// mutated is not seen mutated through `GET`. `torch.save` only re-reads immutable tuples
    /// and globals.
    memo: HashMap<u32, (Value, u32)>,
    /// What the pickle may still build (see [`MAX_VALUES`]).
    values_left: usize,
}

/// Most values a pickle may build: one per opcode, plus every value a copy (DUP, PUT, GET)
/// duplicates, nested ones included, text counting one per 64 bytes. Copies nest, so a few
/// bytes that duplicate a dict into itself would otherwise double memory per opcode (found by
/// fuzzing); a checkpoint needs a few dozen per tensor.
pub const MAX_VALUES: usize = 1 << 22;
/// Deepest nesting of containers (a state dict nests three or four deep).
pub const MAX_DEPTH: u32 = 100;

/// What copying `v` costs (see [`MAX_VALUES`]), counting at most `limit + 1`.
fn cost(v: &Value, limit: usize) -> usize {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Tuple(items) | Value::List(items) => Box::new(items.iter()),
        Value::Dict(items) => Box::new(items.iter().flat_map(|(k, v)| [k, v])),
        Value::Str(s) => return 1 + s.len() / 64,
        Value::Bytes(b) => return 1 + b.len() / 64,
        _ => return 1,
    };
    let mut n = 1;
    for c in children {
        if n > limit {
            break;
        }
        // Depth is at most MAX_DEPTH, so this recursion is shallow.
        n += cost(c, limit - n);
    }
    n
}

impl Machine<'_> {
    /// The value on top of the stack and its depth, copied for DUP or PUT (see
    /// [`Self::charge`]).
    fn copy_top(&mut self, what: &str) -> Result<(Value, u32), PickleError> {
        let n = match self.stack.last() {
            Some(Slot::Val(v, _)) => cost(v, self.values_left),
            _ => return Err(self.malformed(format!("{what} with no value"))),
        };
        self.charge(n)?;
        match self.stack.last() {
            Some(Slot::Val(v, depth)) => Ok((v.clone(), *depth)),
            _ => Err(self.malformed(format!("{what} with no value"))),
        }
    }

    /// Charges `n` values to [`MAX_VALUES`].
    fn charge(&mut self, n: usize) -> Result<(), PickleError> {
        if n > self.values_left {
            return Err(self.malformed(format!(
                "the pickle builds more than {MAX_VALUES} values (a self-duplicating structure, \
                 or far more than a state dict holds)"
            )));
        }
        self.values_left -= n;
        Ok(())
    }

    /// The depth of a container holding items of depth up to `items`.
    fn nest(&self, items: u32) -> Result<u32, PickleError> {
        if items >= MAX_DEPTH {
            return Err(self.malformed(format!("containers nested more than {MAX_DEPTH} deep")));
        }
        Ok(items + 1)
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_pos = self.pos;
            // Every opcode builds at most one new value.
            self.charge(1)?;
            let op = self.byte()?;
            match op {
                0x80 => {
                    // PROTO
                    let v = self.byte()?;
                    if v > 5 {
                        return Err(self.malformed(format!("unknown pickle protocol {v}")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.take(8)?;
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.stack.push(Slot::Mark),
                b'}' => self.push_nested(Value::Dict(Vec::new()), 1),
                b']' => self.push_nested(Value::List(Vec::new()), 1),
                b')' => self.push_nested(Value::Tuple(Vec::new()), 1),
                b't' => {
                    let (items, depth) = self.pop_mark()?;
                    let depth = self.nest(depth)?;
                    self.push_nested(Value::Tuple(items), depth);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.malformed("stack underflow in TUPLE1-3".into()));
                    }
                    let mut items = Vec::with_capacity(n);
                    let mut depth = 0;
                    for _ in 0..n {
                        let (v, d) = self.pop_depth()?;
                        items.push(v);
                        depth = depth.max(d);
                    }
                    items.reverse();
                    let depth = self.nest(depth)?;
                    self.push_nested(Value::Tuple(items), depth);
                }
                b'l' => {
                    let (items, depth) = self.pop_mark()?;
                    let depth = self.nest(depth)?;
                    self.push_nested(Value::List(items), depth);
                }
                b'd' => {
                    let (items, depth) = self.pop_mark()?;
                    let depth = self.nest(depth)?;
                    let pairs = self.pairs(items)?;
                    self.push_nested(Value::Dict(pairs), depth);
                }
                b'a' => {
                    let (v, depth) = self.pop_depth()?;
                    self.list_extend(vec![v], depth)?;
                }
                b'e' => {
                    let (items, depth) = self.pop_mark()?;
                    self.list_extend(items, depth)?;
                }
                b's' => {
                    let (v, dv) = self.pop_depth()?;
                    let (k, dk) = self.pop_depth()?;
                    self.dict_extend(vec![(k, v)], dv.max(dk))?;
                }
                b'u' => {
                    let (items, depth) = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.dict_extend(pairs, depth)?;
                }
                b'J' => {
                    let b = self.take(4)?;
                    let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.push(Value::Int(v as i64));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.byte()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.long(&bytes)?;
                    self.push(Value::Int(v));
                }
                b'I' => {
                    let line = self.line()?;
                    let v = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(
                            s.parse()
                                .map_err(|_| self.malformed(format!("bad INT {s:?}")))?,
                        ),
                    };
                    self.push(v);
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = self.byte()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.u64()?;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'C' => {
                    let n = self.byte()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8e => {
                    let n = self.u64()?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'T' => {
                    // BINSTRING (py2 str): keep the bytes as text where they are UTF-8.
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                b'U' => {
                    let n = self.byte()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                b'q' => {
                    let k = self.byte()? as u32;
                    self.put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.put(k)?;
                }
                0x94 => {
                    // MEMOIZE: the next free index.
                    let k = self.memo.len() as u32;
                    self.put(k)?;
                }
                b'p' => {
                    let line = self.line()?;
                    let k = line
                        .parse()
                        .map_err(|_| self.malformed(format!("bad PUT key {line:?}")))?;
                    self.put(k)?;
                }
                b'h' => {
                    let k = self.byte()? as u32;
                    self.get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.get(k)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let k = line
                        .parse()
                        .map_err(|_| self.malformed(format!("bad GET key {line:?}")))?;
                    self.get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = resolve_global(&module, &name)?;
                    self.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = resolve_global(&m, &n)?;
                            self.push(Value::Global(g));
                        }
                        _ => {
                            return Err(self.malformed("STACK_GLOBAL needs two strings".into()));
                        }
                    }
                }
                b'i' => {
                    // INST names a class inline and instantiates it: only ever refused.
                    let module = self.line()?;
                    let name = self.line()?;
                    resolve_global(&module, &name)?;
                    return Err(PickleError::UnsupportedOpcode {
                        op,
                        pos: self.op_pos,
                    });
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v);
                }
                0x81 => {
                    // NEWOBJ cls(*args): only OrderedDict makes sense here.
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.reduce(cls, args)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: torch sets `_metadata` on the state dict; the state is dropped.
                    let _state = self.pop()?;
                    match self.stack.last() {
                        Some(Slot::Val(Value::Dict(_), _)) => {}
                        Some(Slot::Val(v, _)) => {
                            let kind = v.kind();
                            return Err(self.malformed(format!("BUILD on a {kind}")));
                        }
                        _ => return Err(self.malformed("BUILD with nothing to build".into())),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent(pid)?;
                    self.push(Value::Storage(Box::new(s)));
                }
                b'0' => {
                    self.stack
                        .pop()
                        .ok_or_else(|| self.malformed("POP on an empty stack".into()))?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let (top, depth) = self.copy_top("DUP")?;
                    self.push_nested(top, depth);
                }
                _ => {
                    return Err(PickleError::UnsupportedOpcode {
                        op,
                        pos: self.op_pos,
                    });
                }
            }
        }
    }

    fn malformed(&self, msg: String) -> PickleError {
        PickleError::Malformed {
            pos: self.op_pos,
            msg,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(PickleError::Truncated {
                pos: self.data.len(),
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<usize, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(a)).map_err(|_| PickleError::Truncated {
            pos: self.data.len(),
        })
    }

    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.malformed("string is not UTF-8".into())),
        }
    }

    /// A newline-terminated text operand (GLOBAL, INT, PUT, GET).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(PickleError::Truncated {
                pos: self.data.len(),
            });
        };
        let s = self.utf8(n)?;
        self.pos += 1;
        Ok(s)
    }

    fn long(&self, bytes: &[u8]) -> Result<i64, PickleError> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if bytes.len() > 8 {
            return Err(self.malformed("integer wider than 64 bits".into()));
        }
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut a = [fill; 8];
        a[..bytes.len()].copy_from_slice(bytes);
        Ok(i64::from_le_bytes(a))
    }

    /// Pushes a value that holds no containers (depth 0).
    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Val(v, 0));
    }

    /// Pushes a value of known nesting depth.
    fn push_nested(&mut self, v: Value, depth: u32) {
        self.stack.push(Slot::Val(v, depth));
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.pop_depth().map(|(v, _)| v)
    }

    fn pop_depth(&mut self) -> Result<(Value, u32), PickleError> {
        match self.stack.pop() {
            Some(Slot::Val(v, depth)) => Ok((v, depth)),
            Some(Slot::Mark) => Err(self.malformed("unexpected MARK".into())),
            None => Err(self.malformed("stack underflow".into())),
        }
    }

    /// The values above the topmost MARK, and the deepest one's depth.
    fn pop_mark(&mut self) -> Result<(Vec<Value>, u32), PickleError> {
        let mut items = Vec::new();
        let mut depth = 0;
        loop {
            match self.stack.pop() {
                Some(Slot::Val(v, d)) => {
                    items.push(v);
                    depth = depth.max(d);
                }
                Some(Slot::Mark) => break,
                None => return Err(self.malformed("no MARK on the stack".into())),
            }
        }
        items.reverse();
        Ok((items, depth))
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("odd number of dict items".into()));
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    /// APPEND/APPENDS: `items` (nested up to `depth`) onto the list on top of the stack.
    fn list_extend(&mut self, items: Vec<Value>, depth: u32) -> Result<(), PickleError> {
        let depth = self.nest(depth)?;
        match self.stack.last_mut() {
            Some(Slot::Val(Value::List(l), d)) => {
                l.extend(items);
                *d = (*d).max(depth);
                Ok(())
            }
            _ => Err(self.malformed("APPEND to something that is not a list".into())),
        }
    }

    /// SETITEM/SETITEMS: `pairs` (nested up to `depth`) into the dict on top of the stack. A
    /// repeated key is appended, not looked up (a scan per insertion is quadratic on a hostile
    /// pickle); readers take the last value, as Python keeps.
    fn dict_extend(&mut self, pairs: Vec<(Value, Value)>, depth: u32) -> Result<(), PickleError> {
        let depth = self.nest(depth)?;
        match self.stack.last_mut() {
            Some(Slot::Val(Value::Dict(d), dd)) => {
                d.extend(pairs);
                *dd = (*dd).max(depth);
                Ok(())
            }
            _ => Err(self.malformed("SETITEM on something that is not a dict".into())),
        }
    }

    fn put(&mut self, k: u32) -> Result<(), PickleError> {
        let v = self.copy_top("PUT")?;
        self.memo.insert(k, v);
        Ok(())
    }

    fn get(&mut self, k: u32) -> Result<(), PickleError> {
        let n = match self.memo.get(&k) {
            Some((v, _)) => cost(v, self.values_left),
            None => return Err(self.malformed(format!("memo key {k} was never stored"))),
        };
        self.charge(n)?;
        let (v, depth) = self
            .memo
            .get(&k)
            .cloned()
            .ok_or_else(|| self.malformed(format!("memo key {k} was never stored")))?;
        self.push_nested(v, depth);
        Ok(())
    }

    /// `REDUCE`/`NEWOBJ` for the allowed callables only.
    fn reduce(&self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return Err(self.malformed("REDUCE arguments are not a tuple".into()));
        };
        match callable {
            Value::Global(Global::OrderedDict) => {
                if args.is_empty() {
                    Ok(Value::Dict(Vec::new()))
                } else {
                    Err(self.malformed("OrderedDict with arguments".into()))
                }
            }
            Value::Global(Global::RebuildTensorV2) => self.rebuild_tensor(args),
            other => Err(self.malformed(format!("cannot call a {}", other.kind()))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    fn rebuild_tensor(&self, args: Vec<Value>) -> Result<Value, PickleError> {
        if args.len() < 4 {
            return Err(self.malformed("_rebuild_tensor_v2 needs at least 4 arguments".into()));
        }
        let mut it = args.into_iter();
        let (Some(storage), Some(offset), Some(size), Some(stride)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(self.malformed("_rebuild_tensor_v2 arguments".into()));
        };
        let Value::Storage(storage) = storage else {
            return Err(self.malformed("tensor without a storage".into()));
        };
        let offset = self.usize_of(&offset, "storage offset")?;
        let shape = self.dims(size, "size")?;
        let stride = self.dims(stride, "stride")?;
        if shape.len() != stride.len() {
            return Err(self.malformed("size and stride differ in length".into()));
        }
        Ok(Value::Tensor(Box::new(TensorRef {
            storage: *storage,
            offset,
            shape,
            stride,
        })))
    }

    fn usize_of(&self, v: &Value, what: &str) -> Result<usize, PickleError> {
        match v {
            Value::Int(i) => {
                usize::try_from(*i).map_err(|_| self.malformed(format!("negative {what} ({i})")))
            }
            other => Err(self.malformed(format!("{what} is a {}", other.kind()))),
        }
    }

    fn dims(&self, v: Value, what: &str) -> Result<Vec<usize>, PickleError> {
        match v {
            Value::Tuple(items) | Value::List(items) => {
                items.iter().map(|i| self.usize_of(i, what)).collect()
            }
            other => Err(self.malformed(format!("tensor {what} is a {}", other.kind()))),
        }
    }

    /// `('storage', StorageType, key, location, numel)`.
    fn persistent(&self, pid: Value) -> Result<StorageRef, PickleError> {
        let Value::Tuple(items) = pid else {
            return Err(self.malformed("persistent id is not a tuple".into()));
        };
        match items.as_slice() {
            [
                Value::Str(tag),
                Value::Global(Global::Storage(dtype)),
                Value::Str(key),
                _location,
                numel,
            ] if tag == "storage" => Ok(StorageRef {
                dtype: *dtype,
                key: key.clone(),
                numel: self.usize_of(numel, "storage size")?,
            }),
            _ => Err(self.malformed("persistent id is not a torch storage reference".into())),
        }
    }
}

/// Maps a global to the allowed set or refuses it.
fn resolve_global(module: &str, name: &str) -> Result<Global, PickleError> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch", storage) => StorageDType::from_storage_name(storage)
            .map(Global::Storage)
            .ok_or_else(|| forbidden(module, name)),
        _ => Err(forbidden(module, name)),
    }
}

fn forbidden(module: &str, name: &str) -> PickleError {
    PickleError::ForbiddenGlobal {
        module: module.to_owned(),
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_self_duplicating_dict_is_refused_not_grown() {
        // Found by cargo-fuzz: DUP + SETITEM copies a dict into itself, doubling per opcode.
        let data = include_bytes!("../../tests/fixtures/fuzz/pickle-oom-self-duplicating-dict");
        let err = unpickle(data).expect_err("refused");
        assert!(err.to_string().contains("self-duplicating"), "{err}");
    }

    use super::*;

    /// Protocol 2: `{"a": [1, 2.5, "x"]}` written by CPython's pickle.dumps.
    #[test]
    fn plain_containers() {
        let data = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03es.";
        let v = unpickle(data).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::List(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Str("x".into())
            ]))
        );
    }

    #[test]
    fn os_system_is_refused_by_name() {
        // cos\nsystem\n(S'echo pwned'\ntR.
        let data = b"cos\nsystem\n(X\x0a\x00\x00\x00echo pwnedtR.";
        let err = unpickle(data).unwrap_err();
        assert!(
            matches!(&err, PickleError::ForbiddenGlobal { module, name } if module == "os" && name == "system"),
            "{err}"
        );
        assert!(err.to_string().contains("os.system"));
    }

    #[test]
    fn stack_global_eval_is_refused() {
        let data = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1\x85R.";
        let err = unpickle(data).unwrap_err();
        assert!(err.to_string().contains("builtins.eval"), "{err}");
    }

    #[test]
    fn truncated_and_unknown_opcodes_are_errors() {
        assert!(matches!(
            unpickle(b"\x80\x02X\xff\x00\x00\x00ab"),
            Err(PickleError::Truncated { .. })
        ));
        assert!(matches!(
            unpickle(b"\x80\x02\x82\x01."),
            Err(PickleError::UnsupportedOpcode { op: 0x82, .. })
        ));
        assert!(unpickle(b"").is_err());
        assert!(unpickle(b"s.").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_overflow_the_stack() {
        // A million TUPLE1s around an empty tuple: dropping or copying that value recursively
        // would overflow the stack.
        let mut data = b"\x80\x02)".to_vec();
        data.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        data.push(b'.');
        let err = unpickle(&data).unwrap_err();
        assert!(err.to_string().contains("nested more than"), "{err}");
        // Lists and dicts grown by APPEND/SETITEM count too.
        let mut data = b"\x80\x02]".to_vec();
        data.extend(std::iter::repeat_n(b']', 200));
        data.extend(std::iter::repeat_n(b'a', 200));
        data.push(b'.');
        assert!(unpickle(&data).unwrap_err().to_string().contains("nested"));
        // A hundred levels are fine.
        let mut data = b"\x80\x02)".to_vec();
        data.extend(std::iter::repeat_n(0x85u8, 99));
        data.push(b'.');
        assert!(unpickle(&data).is_ok());
    }

    #[test]
    fn repeated_keys_keep_the_last_value_without_a_scan() {
        // {"a": 1, "a": 2} -> a is 2.
        let v = unpickle(b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.").unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(2)));
        // A million distinct keys in one SETITEMS: linear, not a scan per key.
        let mut data = b"\x80\x02}(".to_vec();
        for i in 0..1_000_000u32 {
            data.push(b'J');
            data.extend_from_slice(&i.to_le_bytes());
            data.push(b'N');
        }
        data.extend_from_slice(b"u.");
        let Value::Dict(items) = unpickle(&data).unwrap() else {
            panic!("a dict");
        };
        assert_eq!(items.len(), 1_000_000);
    }

    #[test]
    fn copies_of_long_strings_are_charged_by_length() {
        // A 1 MB string duplicated 100,000 times would be 100 GB.
        let mut data = b"\x80\x02X".to_vec();
        data.extend_from_slice(&(1u32 << 20).to_le_bytes());
        data.extend(std::iter::repeat_n(b'x', 1 << 20));
        data.extend(std::iter::repeat_n(b'2', 100_000));
        data.push(b'.');
        let err = unpickle(&data).unwrap_err();
        assert!(err.to_string().contains("self-duplicating"), "{err}");
    }

    #[test]
    fn values_stay_small() {
        // Memory per value bounds what MAX_VALUES values can take.
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }

    #[test]
    fn long1_sign_extends() {
        // LONG1 with bytes ff ff -> -1
        let v = unpickle(b"\x8a\x02\xff\xff.").unwrap();
        assert_eq!(v, Value::Int(-1));
    }
}
