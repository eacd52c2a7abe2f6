//! A small, strict reader of ONNX files: the graph's nodes and initializers, nothing else.
//!
//! The messages below are the subset of [onnx.proto](https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
//! that Atelier's model ports need, declared by hand for `prost` (field numbers as in the
//! spec; every other field is skipped by the decoder). This is not an interpreter: the ports in
//! `models::stylenet` know their architecture and use this module to look up weights, layer
//! attributes and fake-quantisation parameters by the names the exporter gave them.
//!
//! Every size and index read from the file is checked; a damaged file gives an [`OnnxError`],
//! never a panic or an unbounded allocation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `ModelProto`: only the graph is read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The IR version the file was written with.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The computation graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `GraphProto`: nodes in topological order, constant tensors, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The operators, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights, quantisation scales and zero points).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// The graph's inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph's outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Names of the input tensors ("" for an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Names of the output tensors.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator, e.g. `Conv`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The operator's attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// The operator set domain ("" is the default ONNX domain).
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// `AttributeProto`: the scalar, list and tensor forms (graph attributes are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// A float value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// A string value (bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// A tensor value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// A list of floats.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// A list of integers.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// Which of the fields above holds the value (`AttributeType`).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `TensorProto`: dims, element type and data, either packed in `raw_data` (little endian) or
/// in the typed repeated fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// The shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// The element type (`TensorProto.DataType`).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// FLOAT data when `raw_data` is empty.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32, INT8, UINT8 (and other small integer types) when `raw_data` is empty.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// INT64 data when `raw_data` is empty.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// The tensor's name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// The data, little endian, packed.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// 1 when the data lives in an external file (not supported here).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `ValueInfoProto`: only the name is read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// The value's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// ONNX element type codes used here (`TensorProto.DataType`).
pub mod data_type {
    /// 32-bit float.
    pub const FLOAT: i32 = 1;
    /// Unsigned 8-bit integer.
    pub const UINT8: i32 = 2;
    /// Signed 8-bit integer.
    pub const INT8: i32 = 3;
    /// Signed 32-bit integer.
    pub const INT32: i32 = 6;
    /// Signed 64-bit integer.
    pub const INT64: i32 = 7;
}

/// Files larger than this are refused before reading: the style models are a few MB.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// What can be wrong with an ONNX file or with what a port expects to find in it.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a valid ONNX protobuf (damaged, truncated or another format).
    #[error("{} is not a valid ONNX model ({source}); fetch it again with models/fetch.sh", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the protobuf decoder found.
        source: prost::DecodeError,
    },
    /// The file is larger than any model Atelier reads.
    #[error("{} is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit for ONNX models", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The model has no graph.
    #[error("{} holds no graph", path.display())]
    NoGraph {
        /// The file.
        path: PathBuf,
    },
    /// A tensor the port needs is not produced by any node nor stored as an initializer.
    #[error("{}: tensor `{name}` not found (is this the right model file?)", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A node has a different operator (or shape of inputs) than the port expects.
    #[error("{}: `{name}` is produced by {found}, expected {expected}", path.display())]
    UnexpectedNode {
        /// The file.
        path: PathBuf,
        /// The tensor or node.
        name: String,
        /// What the port expected.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A tensor's shape, type or data is inconsistent.
    #[error("{}: tensor `{name}` is malformed: {reason}", path.display())]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// A constant tensor decoded to `f32` (weights after dequantisation, scales, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The shape.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// Scale and zero point of a per-tensor `QuantizeLinear` to int8 (or uint8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    /// The quantisation step.
    pub scale: f32,
    /// The integer that represents 0.0.
    pub zero_point: i32,
    /// The smallest representable integer (-128 for int8, 0 for uint8).
    pub qmin: i32,
    /// The largest representable integer (127 for int8, 255 for uint8).
    pub qmax: i32,
}

/// A quantised constant as stored: integer values (as `f32`, exact below 2^24), with one
/// scale and zero point per tensor or per index of the first dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// The shape.
    pub dims: Vec<usize>,
    /// The stored integers.
    pub q: Vec<f32>,
    /// Scales (1 or `dims[0]`).
    pub scale: Vec<f32>,
    /// Zero points (same length as `scale`).
    pub zero_point: Vec<f32>,
}

/// The attributes and constant inputs of one `Conv` node.
#[derive(Clone, Debug)]
pub struct ConvNode {
    /// The node's input names (data, weights, bias).
    pub inputs: Vec<String>,
    /// Weights `[out, in / group, kh, kw]`, dequantised if the file stores them as int8.
    pub weights: Array,
    /// Bias `[out]`, if the node has one.
    pub bias: Option<Vec<f32>>,
    /// Strides `[sy, sx]`.
    pub strides: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Channel groups (1: dense, `in`: depthwise).
    pub group: usize,
}

/// A parsed ONNX model with name indexes for lookups.
pub struct OnnxModel {
    path: PathBuf,
    graph: GraphProto,
    /// Tensor name -> index of the node that produces it.
    producers: HashMap<String, usize>,
    /// Tensor name -> indexes of the nodes that read it.
    consumers: HashMap<String, Vec<usize>>,
    /// Initializer name -> index into `graph.initializer`.
    initializers: HashMap<String, usize>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("nodes", &self.graph.node.len())
            .field("initializers", &self.graph.initializer.len())
            .finish()
    }
}

impl OnnxModel {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<Self, OnnxError> {
        let io = |source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(OnnxError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses an ONNX file already in memory; `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, OnnxError> {
        use prost::Message;
        let model = ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
            path: path.to_path_buf(),
            source,
        })?;
        let graph = model.graph.ok_or_else(|| OnnxError::NoGraph {
            path: path.to_path_buf(),
        })?;
        if graph.node.is_empty() {
            return Err(OnnxError::NoGraph {
                path: path.to_path_buf(),
            });
        }
        let mut producers = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            for out in &node.output {
                producers.insert(out.clone(), i);
            }
            for input in node.input.iter().filter(|n| !n.is_empty()) {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        let initializers = graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            graph,
            producers,
            consumers,
            initializers,
        })
    }

    /// The file this model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The graph.
    pub fn graph(&self) -> &GraphProto {
        &self.graph
    }

    /// Whether some node produces `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.producers.contains_key(name) || self.initializers.contains_key(name)
    }

    /// The node that produces tensor `name`.
    pub fn producer(&self, name: &str) -> Result<&NodeProto, OnnxError> {
        self.producers
            .get(name)
            .and_then(|&i| self.graph.node.get(i))
            .ok_or_else(|| self.missing(name))
    }

    /// The nodes that read tensor `name`.
    pub fn consumers(&self, name: &str) -> Vec<&NodeProto> {
        self.consumers
            .get(name)
            .map(|v| v.iter().filter_map(|&i| self.graph.node.get(i)).collect())
            .unwrap_or_default()
    }

    /// The node producing `name`, checked to be an `op_type`.
    pub fn producer_of_type(&self, name: &str, op_type: &str) -> Result<&NodeProto, OnnxError> {
        let node = self.producer(name)?;
        if node.op_type != op_type {
            return Err(self.unexpected(name, op_type, &node.op_type));
        }
        Ok(node)
    }

    /// The initializer called `name`.
    pub fn initializer(&self, name: &str) -> Result<&TensorProto, OnnxError> {
        self.initializers
            .get(name)
            .and_then(|&i| self.graph.initializer.get(i))
            .ok_or_else(|| self.missing(name))
    }

    /// A constant tensor as `f32`: an initializer (float or integer), or the output of a
    /// `DequantizeLinear` whose inputs are all initializers (int8 weights: dequantised here,
    /// once, at load time).
    pub fn constant(&self, name: &str) -> Result<Array, OnnxError> {
        if let Ok(t) = self.initializer(name) {
            let dims = self.dims(t)?;
            let data = self.values(t)?;
            return Ok(Array { dims, data });
        }
        let node = self.producer_of_type(name, "DequantizeLinear")?;
        self.dequantize(node)
    }

    /// The integer data, scales and zero points behind a `DequantizeLinear` of an initializer
    /// (int8 weights, int32 biases), not multiplied out: for ports that compute in integers.
    pub fn quantized(&self, dq_output: &str) -> Result<Quantized, OnnxError> {
        let node = self.producer_of_type(dq_output, "DequantizeLinear")?;
        let [x_name, s_name, ..] = node.input.as_slice() else {
            return Err(self.unexpected(
                dq_output,
                "DequantizeLinear(x, scale, zp)",
                "fewer inputs",
            ));
        };
        let x = self.initializer(x_name)?;
        let dims = self.dims(x)?;
        let q = self.values(x)?;
        let scale = self.constant(s_name)?.data;
        let zero_point = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(z) => self.constant(z)?.data,
            None => vec![0.0; scale.len()],
        };
        if scale.len() != zero_point.len()
            || (scale.len() != 1 && dims.first() != Some(&scale.len()))
        {
            return Err(self.bad(dq_output, "scales do not match the first dimension"));
        }
        Ok(Quantized {
            dims,
            q,
            scale,
            zero_point,
        })
    }

    /// Scale and zero point of the per-tensor `DequantizeLinear` that produces `dq_output`.
    pub fn dequant_params(&self, dq_output: &str) -> Result<(f32, f32), OnnxError> {
        let node = self.producer_of_type(dq_output, "DequantizeLinear")?;
        let scale = self.scalar(node.input.get(1).map(String::as_str).unwrap_or(""))?;
        let zp = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(z) => self.scalar(z)?,
            None => 0.0,
        };
        Ok((scale, zp))
    }

    /// Scale and zero point of the per-tensor `QuantizeLinear` that produces `q_output`.
    pub fn quant_params(&self, q_output: &str) -> Result<QuantParams, OnnxError> {
        let node = self.producer_of_type(q_output, "QuantizeLinear")?;
        let scale_name = node.input.get(1).ok_or_else(|| self.missing(q_output))?;
        let scale = self.scalar(scale_name)?;
        let (zero_point, qmin, qmax) = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(zp_name) => {
                let t = self.initializer(zp_name)?;
                let v = self.values(t)?;
                if v.len() != 1 {
                    return Err(self.bad(zp_name, "a per-tensor zero point must be a scalar"));
                }
                let (lo, hi) = match t.data_type {
                    data_type::INT8 => (-128, 127),
                    data_type::UINT8 => (0, 255),
                    other => {
                        return Err(self.bad(zp_name, &format!("zero point type {other}")));
                    }
                };
                (v[0] as i32, lo, hi)
            }
            // ONNX default: uint8 with zero point 0.
            None => (0, 0, 255),
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(self.bad(scale_name, "the scale must be a positive number"));
        }
        if !(qmin..=qmax).contains(&zero_point) {
            return Err(self.bad(q_output, "the zero point is outside the integer range"));
        }
        Ok(QuantParams {
            scale,
            zero_point,
            qmin,
            qmax,
        })
    }

    /// The `Conv` node that produces `output`, with its weights and attributes.
    pub fn conv(&self, output: &str) -> Result<ConvNode, OnnxError> {
        let node = self.producer_of_type(output, "Conv")?;
        let w_name = node.input.get(1).ok_or_else(|| self.missing(output))?;
        let weights = self.constant(w_name)?;
        if weights.dims.len() != 4 {
            return Err(self.bad(w_name, "convolution weights must have 4 dimensions"));
        }
        let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(b) => {
                let bias = self.constant(b)?;
                if bias.data.len() != weights.dims[0] {
                    return Err(self.bad(b, "bias length differs from the output channels"));
                }
                Some(bias.data)
            }
            None => None,
        };
        let ints = |key: &str| -> Option<&Vec<i64>> {
            node.attribute
                .iter()
                .find(|a| a.name == key)
                .map(|a| &a.ints)
        };
        let usize_list =
            |key: &str, want: usize, default: usize| -> Result<Vec<usize>, OnnxError> {
                match ints(key) {
                    None => Ok(vec![default; want]),
                    Some(v) if v.len() == want && v.iter().all(|&x| (0..=64).contains(&x)) => {
                        Ok(v.iter().map(|&x| x as usize).collect())
                    }
                    Some(v) => Err(self.bad(&node.name, &format!("attribute {key} = {v:?}"))),
                }
            };
        let strides = usize_list("strides", 2, 1)?;
        let pads = usize_list("pads", 4, 0)?;
        if let Some(d) = ints("dilations")
            && d.iter().any(|&x| x != 1)
        {
            return Err(self.bad(&node.name, "dilated convolutions are not supported"));
        }
        if let Some(k) = ints("kernel_shape")
            && (k.len() != 2
                || k[0] as usize != weights.dims[2]
                || k[1] as usize != weights.dims[3])
        {
            return Err(self.bad(&node.name, "kernel_shape differs from the weights"));
        }
        let group = node
            .attribute
            .iter()
            .find(|a| a.name == "group")
            .map(|a| a.i)
            .unwrap_or(1);
        if !(1..=1 << 16).contains(&group) || strides.contains(&0) {
            return Err(self.bad(&node.name, "bad group or stride"));
        }
        Ok(ConvNode {
            inputs: node.input.clone(),
            weights,
            bias,
            strides: [strides[0], strides[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            group: group as usize,
        })
    }

    /// A scalar float initializer (or a one-element tensor).
    pub fn scalar(&self, name: &str) -> Result<f32, OnnxError> {
        let a = self.constant(name)?;
        match a.data.as_slice() {
            [v] => Ok(*v),
            _ => Err(self.bad(name, "expected a single value")),
        }
    }

    fn dequantize(&self, node: &NodeProto) -> Result<Array, OnnxError> {
        let name = node.output.first().map(String::as_str).unwrap_or("");
        let [x_name, s_name, ..] = node.input.as_slice() else {
            return Err(self.unexpected(name, "DequantizeLinear(x, scale, zp)", "fewer inputs"));
        };
        let x = self.initializer(x_name)?;
        let dims = self.dims(x)?;
        let q = self.values(x)?;
        let scale = self.constant(s_name)?.data;
        let zp = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(z) => self.constant(z)?.data,
            None => vec![0.0; scale.len()],
        };
        if scale.len() != zp.len() || scale.is_empty() {
            return Err(self.bad(name, "scale and zero point lengths differ"));
        }
        let axis = node
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map(|a| a.i)
            .unwrap_or(1);
        if scale.len() == 1 {
            let (s, z) = (scale[0], zp[0]);
            let data = q.iter().map(|&v| (v - z) * s).collect();
            return Ok(Array { dims, data });
        }
        // Per-axis: one scale per index along `axis`.
        let rank = dims.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) || dims[axis as usize] != scale.len() {
            return Err(self.bad(name, "per-axis scale does not match the tensor's shape"));
        }
        let axis = axis as usize;
        let inner: usize = dims[axis + 1..].iter().product();
        let n = dims[axis];
        let data = q
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / inner.max(1)) % n;
                (v - zp[c]) * scale[c]
            })
            .collect();
        Ok(Array { dims, data })
    }

    fn dims(&self, t: &TensorProto) -> Result<Vec<usize>, OnnxError> {
        let mut dims = Vec::with_capacity(t.dims.len());
        let mut count: usize = 1;
        for &d in &t.dims {
            let d = usize::try_from(d).map_err(|_| self.bad(&t.name, "negative dimension"))?;
            count = count
                .checked_mul(d)
                .ok_or_else(|| self.bad(&t.name, "element count overflows"))?;
            dims.push(d);
        }
        Ok(dims)
    }

    /// The tensor's values converted to `f32` (integers are exact below 2^24, which covers the
    /// int8 weights, int32 biases and zero points read here).
    fn values(&self, t: &TensorProto) -> Result<Vec<f32>, OnnxError> {
        if t.data_location == 1 {
            return Err(self.bad(&t.name, "external data is not supported"));
        }
        let n: usize = self.dims(t)?.iter().product();
        let elem = match t.data_type {
            data_type::FLOAT | data_type::INT32 => 4,
            data_type::INT8 | data_type::UINT8 => 1,
            data_type::INT64 => 8,
            other => return Err(self.bad(&t.name, &format!("unsupported element type {other}"))),
        };
        if !t.raw_data.is_empty() {
            if t.raw_data.len() != n.saturating_mul(elem) {
                return Err(self.bad(
                    &t.name,
                    &format!(
                        "holds {} bytes, its shape needs {}",
                        t.raw_data.len(),
                        n.saturating_mul(elem)
                    ),
                ));
            }
            let raw = &t.raw_data;
            let out = match t.data_type {
                data_type::FLOAT => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                data_type::INT32 => raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                    .collect(),
                data_type::INT64 => raw
                    .chunks_exact(8)
                    .map(|b| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        i64::from_le_bytes(a) as f32
                    })
                    .collect(),
                data_type::INT8 => raw.iter().map(|&b| b as i8 as f32).collect(),
                _ => raw.iter().map(|&b| b as f32).collect(),
            };
            return Ok(out);
        }
        let out: Vec<f32> = match t.data_type {
            data_type::FLOAT => t.float_data.clone(),
            data_type::INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
            _ => t.int32_data.iter().map(|&v| v as f32).collect(),
        };
        if out.len() != n {
            return Err(self.bad(
                &t.name,
                &format!("holds {} values, its shape needs {n}", out.len()),
            ));
        }
        Ok(out)
    }

    fn missing(&self, name: &str) -> OnnxError {
        OnnxError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        }
    }

    fn unexpected(&self, name: &str, expected: &str, found: &str) -> OnnxError {
        OnnxError::UnexpectedNode {
            path: self.path.clone(),
            name: name.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// A malformed-tensor error for `name`.
    pub fn bad(&self, name: &str, reason: &str) -> OnnxError {
        OnnxError::BadTensor {
            path: self.path.clone(),
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn tensor(name: &str, dims: &[i64], dt: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: dt,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: output.into(),
            op_type: op.into(),
            ..Default::default()
        }
    }

    fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            graph: Some(GraphProto {
                node: nodes,
                name: "g".into(),
                initializer: inits,
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn dequantizes_per_axis_int8_weights() {
        let bytes = model(
            vec![node("DequantizeLinear", &["w", "s", "z"], "w_dq")],
            vec![
                tensor("w", &[2, 2], data_type::INT8, vec![1, 255, 10, 20]), // 1, -1, 10, 20
                tensor(
                    "s",
                    &[2],
                    data_type::FLOAT,
                    [0.5f32, 2.0].iter().flat_map(|f| f.to_le_bytes()).collect(),
                ),
                tensor("z", &[2], data_type::INT8, vec![0, 10]),
            ],
        );
        let m = OnnxModel::from_bytes(&bytes, Path::new("t.onnx")).unwrap();
        let w = m.constant("w_dq").unwrap();
        assert_eq!(w.dims, vec![2, 2]);
        // The DequantizeLinear default axis is 1: scale/zp per column.
        assert_eq!(w.data, vec![0.5, -22.0, 5.0, 20.0]);
    }

    #[test]
    fn quant_params_of_a_quantize_node() {
        let bytes = model(
            vec![node("QuantizeLinear", &["x", "s", "z"], "xq")],
            vec![
                tensor("s", &[], data_type::FLOAT, 0.25f32.to_le_bytes().to_vec()),
                tensor("z", &[], data_type::INT8, vec![(-3i8) as u8]),
            ],
        );
        let m = OnnxModel::from_bytes(&bytes, Path::new("t.onnx")).unwrap();
        let q = m.quant_params("xq").unwrap();
        assert_eq!(
            (q.scale, q.zero_point, q.qmin, q.qmax),
            (0.25, -3, -128, 127)
        );
    }

    #[test]
    fn corrupt_and_inconsistent_files_are_errors() {
        // Random bytes: a decode error, not a panic.
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761u32) >> 13) as u8)
            .collect();
        assert!(OnnxModel::from_bytes(&junk, Path::new("j.onnx")).is_err());
        // A truncated valid file.
        let bytes = model(
            vec![node("Relu", &["a"], "b")],
            vec![tensor("a", &[4], data_type::FLOAT, vec![0; 16])],
        );
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            let _ = OnnxModel::from_bytes(&bytes[..cut], Path::new("t.onnx"));
        }
        // Raw data shorter than the shape says.
        let bytes = model(
            vec![node("Relu", &["a"], "b")],
            vec![tensor("a", &[1000], data_type::FLOAT, vec![0; 16])],
        );
        let m = OnnxModel::from_bytes(&bytes, Path::new("t.onnx")).unwrap();
        assert!(matches!(m.constant("a"), Err(OnnxError::BadTensor { .. })));
        // Huge dims whose product overflows.
        let bytes = model(
            vec![node("Relu", &["a"], "b")],
            vec![tensor("a", &[1 << 40, 1 << 40], data_type::FLOAT, vec![])],
        );
        let m = OnnxModel::from_bytes(&bytes, Path::new("t.onnx")).unwrap();
        assert!(m.constant("a").is_err());
        assert!(matches!(
            m.constant("nope"),
            Err(OnnxError::MissingTensor { .. })
        ));
    }
}
