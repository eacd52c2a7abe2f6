//! The Style job: what the panel, the CLI, the tests and the benchmark ask for, and the one
//! function that does it on the worker thread ([`run`]).
//!
//! A request names the content image, the style (a blend of the 26 built-in styles, or any
//! image for the arbitrary-style model), the output size, tiling and the finish (strength,
//! preserve colours). A *preview* pass runs the same pipeline on the content scaled to
//! [`PREVIEW_SIZE`] so the panel can show a result within ~150 ms of a change; the *full*
//! pass runs at the output size, tiled when large, with progress per tile.
//!
//! The panel applies strength and preserve-colour in a shader for instant feedback, so
//! [`StyleOutput`] carries the content and the raw stylised image at the same size as well as
//! the finished one ([`crate::models::stylenet::colour`] is the shader's CPU reference).
//! [`job`] holds what a Style job asks for and reports (the engine runs it).

pub mod job;

pub use job::{StyleEvent, StyleJob};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use image::RgbImage;

use crate::gpu::GpuRuntime;
use crate::gpu::blend::stylize_to_texture;
use crate::gpu::stylenet::{
    GpuMultistyle, GpuMultistyleNet, GpuTiledNet, GpuTransform, GpuTransformNet,
};
use crate::models::stylenet::colour::{Finish, compose};
use crate::models::stylenet::image::{LoadedImage, fit_within, region, resize, to_feature_map};
use crate::models::stylenet::tiling::{
    MultistyleNet, TileOptions, TilePlan, TileReport, TransformNet, stylize,
};
use crate::models::stylenet::{
    self as models, FeatureMap, Multistyle26, STYLE_IMAGE_SIZE, StyleError, StyleMix,
    StylePredictor, StyleTransform, check_cancel,
};

/// Longest side of preview results.
pub const PREVIEW_SIZE: u32 = 384;

/// An image given to a style job: a file (decoded on the worker, EXIF-oriented, size-limited)
/// or pixels the caller already has (a pasted image, the Faces result).
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// A PNG, JPEG, GIF or WebP file.
    File(PathBuf),
    /// Decoded 8-bit RGB pixels.
    Pixels(Arc<RgbImage>),
}

/// Which style to apply.
#[derive(Clone, Debug)]
pub enum StyleChoice {
    /// A blend of multistyle26's 26 styles.
    Preset(StyleMix),
    /// Any image as the style (the arbitrary-style pair; resized to 256×256 for the predictor).
    Image(ImageSource),
}

/// One style transfer.
#[derive(Clone, Debug)]
pub struct StyleRequest {
    /// The image to restyle.
    pub content: ImageSource,
    /// The style.
    pub style: StyleChoice,
    /// Longest side of the output; `None` keeps the content's size. Never enlarges.
    pub max_size: Option<u32>,
    /// Tiling of large images.
    pub tiles: TileOptions,
    /// Strength and preserve-colour, applied on the CPU to [`StyleOutput::image`].
    pub finish: Finish,
}

impl StyleRequest {
    /// A request with default tiling and finish.
    pub fn new(content: ImageSource, style: StyleChoice) -> Self {
        Self {
            content,
            style,
            max_size: None,
            tiles: TileOptions::default(),
            finish: Finish::default(),
        }
    }
}

/// Preview or full resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StylePass {
    /// Quick, low resolution: the content scaled to fit `max_side` (whole image, no tiles).
    Preview {
        /// Longest side.
        max_side: u32,
    },
    /// The requested output size, tiled when large.
    Full,
}

/// The result of a style job.
#[derive(Clone, Debug)]
pub struct StyleOutput {
    /// The content at the output size: what strength blends towards, the split view's
    /// "before".
    pub content: Arc<RgbImage>,
    /// The network's output at the output size (no finish applied).
    pub stylized: Arc<RgbImage>,
    /// `stylized` with the request's finish applied (the same image when the finish is
    /// strength 1 without preserve-colour).
    pub image: Arc<RgbImage>,
    /// Whether this is a preview.
    pub preview: bool,
    /// Tiles run, and where the norm statistics came from.
    pub report: TileReport,
    /// Things the user should know (scaled down, EXIF rotation applied, ...).
    pub notes: Vec<String>,
    /// Wall time of the job, including loading the images.
    pub seconds: f64,
}

/// A decoded file remembered by path, size and modification time.
struct CachedFile {
    key: (PathBuf, u64, Option<SystemTime>),
    image: Arc<LoadedImage>,
}

/// The style models, loaded on first use and kept, and the last decoded files (the panel
/// re-sends the same content for every preview).
pub struct StyleModels {
    dir: PathBuf,
    multistyle: Option<Multistyle26>,
    predictor: Option<StylePredictor>,
    transform: Option<StyleTransform>,
    /// The last style bottleneck, keyed by the style image's identity.
    bottleneck: Option<(String, Vec<f32>)>,
    files: Vec<CachedFile>,
}

impl StyleModels {
    /// Models looked up in `dir` (normally [`crate::paths::models_dir`]).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            multistyle: None,
            predictor: None,
            transform: None,
            bottleneck: None,
            files: Vec::new(),
        }
    }

    /// The model files `style` needs that are not loaded yet.
    pub fn to_load(&self, style: &StyleChoice) -> Vec<PathBuf> {
        let mut v = Vec::new();
        match style {
            StyleChoice::Preset(_) if self.multistyle.is_none() => {
                v.push(self.dir.join(models::MULTISTYLE_FILE))
            }
            StyleChoice::Image(_) => {
                if self.predictor.is_none() {
                    v.push(self.dir.join(models::PREDICT_FILE));
                }
                if self.transform.is_none() {
                    v.push(self.dir.join(models::TRANSFORM_FILE));
                }
            }
            _ => {}
        }
        v
    }

    fn model_path(&self, file: &str) -> Result<PathBuf, StyleError> {
        let p = self.dir.join(file);
        if p.is_file() {
            Ok(p)
        } else {
            Err(StyleError::MissingModel { path: p })
        }
    }

    /// multistyle26, loaded on first use.
    pub fn multistyle(&mut self) -> Result<&Multistyle26, StyleError> {
        if self.multistyle.is_none() {
            self.multistyle = Some(Multistyle26::load(
                &self.model_path(models::MULTISTYLE_FILE)?,
            )?);
        }
        self.multistyle
            .as_ref()
            .ok_or_else(|| StyleError::BadInput("multistyle26 not loaded".into()))
    }

    /// The arbitrary-style pair, loaded on first use.
    pub fn arbitrary(&mut self) -> Result<(&StylePredictor, &StyleTransform), StyleError> {
        if self.predictor.is_none() {
            self.predictor = Some(StylePredictor::load(
                &self.model_path(models::PREDICT_FILE)?,
            )?);
        }
        if self.transform.is_none() {
            self.transform = Some(StyleTransform::load(
                &self.model_path(models::TRANSFORM_FILE)?,
            )?);
        }
        match (&self.predictor, &self.transform) {
            (Some(p), Some(t)) => Ok((p, t)),
            _ => Err(StyleError::BadInput(
                "arbitrary-style models not loaded".into(),
            )),
        }
    }

    /// Decodes an image source (files are cached: two entries, content and style).
    pub fn image(&mut self, source: &ImageSource) -> Result<Arc<LoadedImage>, StyleError> {
        match source {
            ImageSource::Pixels(p) => Ok(Arc::new(LoadedImage {
                image: (**p).clone(),
                reoriented: false,
            })),
            ImageSource::File(path) => {
                let meta = std::fs::metadata(path).map_err(|source| StyleError::Io {
                    path: path.clone(),
                    source,
                })?;
                let key = (path.clone(), meta.len(), meta.modified().ok());
                if let Some(c) = self.files.iter().find(|c| c.key == key) {
                    return Ok(c.image.clone());
                }
                let image = Arc::new(models::image::load(path)?);
                self.files.insert(
                    0,
                    CachedFile {
                        key,
                        image: image.clone(),
                    },
                );
                self.files.truncate(2);
                Ok(image)
            }
        }
    }
}

/// Runs one style job. `progress(done, total)` reports steps (the statistics pass and each
/// tile); `cancel` is polled between tiles and layers and turns into
/// [`StyleError::Cancelled`]. With `gpu`, the style network runs there (uploaded on first
/// use); the style predictor, tiling and finish stay on the CPU.
pub fn run(
    models: &mut StyleModels,
    req: &StyleRequest,
    pass: StylePass,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
    gpu: Option<&mut GpuRuntime>,
) -> Result<StyleOutput, StyleError> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let content = prepare_content(models, req, pass, &mut notes)?;
    check_cancel(cancel)?;

    let (stylized, report) = match &req.style {
        StyleChoice::Preset(mix) => {
            let net = models.multistyle()?;
            let style = net.mix(mix);
            match gpu {
                Some(rt) => {
                    if rt.multistyle.is_none() {
                        rt.multistyle = Some(GpuMultistyle::new(&rt.ctx, rt.kernels.clone(), net)?);
                    }
                    let net = rt.multistyle.as_ref().ok_or_else(|| {
                        StyleError::BadInput("multistyle26 not on the GPU".into())
                    })?;
                    let tiled = GpuMultistyleNet { net, style };
                    stylize(&tiled, &content, &req.tiles, progress, cancel)?
                }
                None => {
                    let tiled = MultistyleNet { net, style };
                    stylize(&tiled, &content, &req.tiles, progress, cancel)?
                }
            }
        }
        StyleChoice::Image(source) => {
            let bottleneck = bottleneck(models, source, cancel)?;
            let (_, transform) = models.arbitrary()?;
            let style = transform.style(&bottleneck)?;
            match gpu {
                Some(rt) => {
                    if rt.transform.is_none() {
                        rt.transform =
                            Some(GpuTransform::new(&rt.ctx, rt.kernels.clone(), transform)?);
                    }
                    let net = rt.transform.as_ref().ok_or_else(|| {
                        StyleError::BadInput("the style transform is not on the GPU".into())
                    })?;
                    let tiled = GpuTransformNet { net, style };
                    stylize(&tiled, &content, &req.tiles, progress, cancel)?
                }
                None => {
                    let tiled = TransformNet {
                        net: transform,
                        style,
                    };
                    stylize(&tiled, &content, &req.tiles, progress, cancel)?
                }
            }
        }
    };
    if let Some(note) = tiles_note(&report, content.dimensions()) {
        notes.push(note);
    }
    let stylized = Arc::new(stylized);
    let image =
        if req.finish.is_identity() {
            stylized.clone()
        } else {
            Arc::new(compose(&content, &stylized, req.finish).ok_or_else(|| {
                StyleError::BadInput("output size differs from the content".into())
            })?)
        };
    Ok(StyleOutput {
        content,
        stylized,
        image,
        preview: matches!(pass, StylePass::Preview { .. }),
        report,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks the request's finish and size, and loads the content at the pass's size (notes say
/// what was scaled or rotated).
fn prepare_content(
    models: &mut StyleModels,
    req: &StyleRequest,
    pass: StylePass,
    notes: &mut Vec<String>,
) -> Result<Arc<RgbImage>, StyleError> {
    if !(0.0..=1.0).contains(&req.finish.strength) {
        return Err(StyleError::BadInput(format!(
            "strength must be between 0 and 1 (got {})",
            req.finish.strength
        )));
    }
    if req.max_size == Some(0) {
        return Err(StyleError::BadInput(
            "the maximum size must be at least 1 pixel".into(),
        ));
    }
    let loaded = models.image(&req.content)?;
    if loaded.reoriented {
        notes.push("rotated upright as its EXIF orientation says".into());
    }
    let (cw, ch) = loaded.image.dimensions();
    let limit = match pass {
        StylePass::Preview { max_side } => Some(req.max_size.map_or(max_side, |m| m.min(max_side))),
        StylePass::Full => req.max_size,
    };
    let content: Arc<RgbImage> = match limit.and_then(|m| fit_within(&loaded.image, m)) {
        Some(small) => {
            if pass == StylePass::Full {
                notes.push(format!(
                    "scaled from {cw}×{ch} to {}×{} (maximum size)",
                    small.width(),
                    small.height()
                ));
            }
            Arc::new(small)
        }
        None => Arc::new(loaded.image.clone()),
    };
    drop(loaded);
    Ok(content)
}

/// The style bottleneck of an image used as the style: predicted once per file (files are
/// remembered by path, size and time; pixel buffers have no identity that survives being
/// freed and reallocated).
fn bottleneck(
    models: &mut StyleModels,
    source: &ImageSource,
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<f32>, StyleError> {
    let id = match source {
        ImageSource::File(p) => std::fs::metadata(p)
            .ok()
            .map(|m| format!("{}:{}:{:?}", p.display(), m.len(), m.modified().ok())),
        ImageSource::Pixels(_) => None,
    };
    let b = match (&models.bottleneck, &id) {
        (Some((key, b)), Some(id)) if key == id => b.clone(),
        _ => {
            let style = models.image(source)?;
            let small = resize(&style.image, STYLE_IMAGE_SIZE, STYLE_IMAGE_SIZE);
            let (predictor, _) = models.arbitrary()?;
            let b = predictor.predict(&to_feature_map(&small), cancel)?;
            models.bottleneck = id.map(|id| (id, b.clone()));
            b
        }
    };
    Ok(b)
}

/// A result computed on the window's GPU: the stylised image is a texture there, never read
/// back to be shown (the panel's finish shader samples it directly).
#[derive(Debug)]
pub struct GpuStyleOutput {
    /// The content at the output size (the split view's "before").
    pub content: Arc<RgbImage>,
    /// The network's output at the content's size, RGBA8 on the window's device.
    pub stylized: wgpu::Texture,
    /// Things the user should know (EXIF rotation applied, ...).
    pub notes: Vec<String>,
    /// Wall time of the job, including loading the images.
    pub seconds: f64,
}

/// [`run`] on `rt`'s device into a texture: a picture that fits one tile runs whole, a larger
/// one tile by tile, blended there too ([`crate::gpu::blend`]). `None` when the result is too
/// large for the device's texture or binding limits (the caller runs [`run`], whose tiles are
/// blended on the CPU). `progress` and `cancel` as for [`run`].
pub fn run_to_texture(
    models: &mut StyleModels,
    req: &StyleRequest,
    pass: StylePass,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
    rt: &mut GpuRuntime,
) -> Result<Option<GpuStyleOutput>, StyleError> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let content = prepare_content(models, req, pass, &mut notes)?;
    check_cancel(cancel)?;
    let opts = &req.tiles;
    let done = match &req.style {
        StyleChoice::Preset(mix) => {
            let net = models.multistyle()?;
            let style = net.mix(mix);
            if rt.multistyle.is_none() {
                rt.multistyle = Some(GpuMultistyle::new(&rt.ctx, rt.kernels.clone(), net)?);
            }
            let gpu = rt
                .multistyle
                .as_ref()
                .ok_or_else(|| StyleError::BadInput("multistyle26 not on the GPU".into()))?;
            let net = GpuMultistyleNet { net: gpu, style };
            let whole = |x: &FeatureMap, size| gpu.forward_to_texture(x, &net.style, size);
            on_device(&net, &content, opts, whole, progress, cancel)?
        }
        StyleChoice::Image(source) => {
            let b = bottleneck(models, source, cancel)?;
            let (_, transform) = models.arbitrary()?;
            let style = transform.style(&b)?;
            if rt.transform.is_none() {
                rt.transform = Some(GpuTransform::new(&rt.ctx, rt.kernels.clone(), transform)?);
            }
            let gpu = rt.transform.as_ref().ok_or_else(|| {
                StyleError::BadInput("the style transform is not on the GPU".into())
            })?;
            let net = GpuTransformNet { net: gpu, style };
            let whole = |x: &FeatureMap, size| gpu.forward_to_texture(x, &net.style, size);
            on_device(&net, &content, opts, whole, progress, cancel)?
        }
    };
    // Too large for the device's texture or binding limits: the caller blends on the CPU.
    let Some((stylized, report)) = done else {
        return Ok(None);
    };
    if let Some(note) = report
        .as_ref()
        .and_then(|r| tiles_note(r, content.dimensions()))
    {
        notes.push(note);
    }
    // Finished on the device before the time is taken (a wait, not a read-back).
    rt.ctx.wait()?;
    check_cancel(cancel)?;
    Ok(Some(GpuStyleOutput {
        content,
        stylized,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// `net` on the whole of `content` (`whole` leaves the result in a texture) when the plan
/// says it runs whole on this device, else tiles blended on the device; `None` when the
/// result is too large to blend there.
fn on_device<N: GpuTiledNet>(
    net: &N,
    content: &RgbImage,
    opts: &TileOptions,
    whole: impl FnOnce(&FeatureMap, (u32, u32)) -> Result<wgpu::Texture, StyleError>,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &(dyn Fn() -> bool + Sync),
) -> Result<Option<(wgpu::Texture, Option<TileReport>)>, StyleError> {
    let (w, h) = content.dimensions();
    let plan = TilePlan::new(w, h, opts, &net.cost())?;
    if plan.is_whole() {
        let x = region(content, 0, 0, plan.w4, plan.h4);
        return Ok(Some((whole(&x, (w, h))?, None)));
    }
    if !crate::gpu::blend::fits_device(net.ctx(), w, h) {
        return Ok(None);
    }
    Ok(stylize_to_texture(net, content, opts, progress, cancel)?.map(|(t, r)| (t, Some(r))))
}

/// The note a tiled result gets when its statistics came from a scaled-down picture.
fn tiles_note(report: &TileReport, size: (u32, u32)) -> Option<String> {
    let (sw, sh) = report.stats_from?;
    ((sw, sh) != size).then(|| {
        format!(
            "{} tiles; normalisation statistics from the image scaled to {sw}×{sh}",
            report.tiles
        )
    })
}

/// Checks that the three style model files exist in `dir` (for `atelier models list`).
pub fn model_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    [
        models::MULTISTYLE_FILE,
        models::PREDICT_FILE,
        models::TRANSFORM_FILE,
    ]
    .into_iter()
    .map(|f| (f, dir.join(f)))
    .collect()
}
