//! The settings of the next run, as the forms edit them, and the configurations they make.
//! Defaults are the recipes of the README's Training section.

use std::path::{Path, PathBuf};

use crate::features::train::faces::{
    PictureSource, StartFrom, TrainFacesConfig, TrainSettings, runs,
};
use crate::features::train::write::{
    DEFAULT_ALPHA, DEFAULT_BATCH, DEFAULT_CONTEXT, DEFAULT_LR, DEFAULT_RANK, TextSource,
    TrainWriteConfig,
};
use crate::models::llm::lora::LoraTarget;

/// Where a pictures run starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// Fine-tune the face model.
    #[default]
    Faces,
    /// A new generator of the same architecture.
    Scratch,
}

/// The pictures form.
#[derive(Clone, Debug, PartialEq)]
pub struct PicturesForm {
    /// The pictures (a folder, or dropped files).
    pub source: Option<PictureSource>,
    /// Transparency is composited onto this colour.
    pub background: [u8; 3],
    /// Fine-tuning or from scratch.
    pub start: Start,
    /// Steps to train.
    pub steps: u64,
    /// Pictures per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// DiffAugment.
    pub augment: bool,
    /// A checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// The sample grid every this many steps.
    pub samples_every: u64,
    /// Seed of everything random.
    pub seed: u64,
    /// Cores the run may use.
    pub threads: usize,
    /// The networks' widths (tests train tiny networks; the form never changes it).
    pub shape: crate::models::gan::GanShape,
}

impl Default for PicturesForm {
    fn default() -> Self {
        Self {
            source: None,
            background: [255, 255, 255],
            start: Start::Faces,
            steps: 300,
            batch: 32,
            lr: 2e-4,
            augment: true,
            checkpoint_every: 50,
            samples_every: 5,
            seed: 0,
            threads: cores(),
            shape: crate::models::gan::GanShape::FACES,
        }
    }
}

impl PicturesForm {
    /// A new run in a fresh folder under `root`; its generator is exported into the run folder
    /// at the end (so "Open in Faces" has a file).
    pub fn config(&self, root: &Path) -> Option<TrainFacesConfig> {
        let source = self.source.clone()?;
        let mut settings = TrainSettings::new(source, crate::features::faces::default_model());
        settings.background = self.background;
        if self.start == Start::Scratch {
            settings.start = StartFrom::Scratch;
        }
        settings.batch = self.batch;
        settings.lr = self.lr;
        settings.augment = self.augment;
        settings.seed = self.seed;
        settings.shape = self.shape;
        let run_dir = runs::new_run_dir(root);
        let mut config = TrainFacesConfig::new(settings, run_dir.clone(), self.steps);
        config.checkpoint_every = self.checkpoint_every.max(1);
        config.samples_every = self.samples_every.max(1);
        config.export = Some(run_dir.join(GENERATOR_FILE));
        Some(config)
    }
}

/// The generator a pictures run exports into its folder.
pub const GENERATOR_FILE: &str = "generator.safetensors";

/// The writing form.
#[derive(Clone, Debug, PartialEq)]
pub struct WritingForm {
    /// The base model (`None`: the Write panel's, else SmolLM2).
    pub model: Option<PathBuf>,
    /// Text and Markdown files.
    pub files: Vec<PathBuf>,
    /// Atelier documents, by id.
    pub documents: Vec<String>,
    /// The adapter's name (its file in the adapters folder, where Write finds it).
    pub name: String,
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha.
    pub alpha: f32,
    /// The adapted projections.
    pub targets: Vec<LoraTarget>,
    /// Steps (0: one epoch).
    pub steps: u64,
    /// Tokens per chunk.
    pub context: usize,
    /// Chunks per step.
    pub batch: usize,
    /// AdamW's learning rate.
    pub lr: f32,
    /// Validation every this many steps.
    pub eval_every: u64,
    /// A sample continuation every this many steps.
    pub sample_every: u64,
    /// Seed.
    pub seed: u64,
    /// Cores the run may use.
    pub threads: usize,
}

impl Default for WritingForm {
    fn default() -> Self {
        Self {
            model: None,
            files: Vec::new(),
            documents: Vec::new(),
            name: "my-voice".into(),
            rank: DEFAULT_RANK,
            alpha: DEFAULT_ALPHA,
            targets: LoraTarget::ALL.to_vec(),
            steps: 0,
            context: DEFAULT_CONTEXT,
            batch: DEFAULT_BATCH,
            lr: DEFAULT_LR,
            eval_every: 10,
            sample_every: 20,
            seed: 0,
            threads: cores(),
        }
    }
}

impl WritingForm {
    /// The sources the form names: files, then documents of the data folder `data`.
    pub fn sources(&self, data: &Path) -> Vec<TextSource> {
        let files = self
            .files
            .iter()
            .map(|p| TextSource::File { path: p.clone() });
        let docs = self.documents.iter().map(|id| TextSource::Document {
            data_dir: data.to_path_buf(),
            id: id.clone(),
        });
        files.chain(docs).collect()
    }

    /// A new run on `model` with runs under `root` and the adapter saved as
    /// `<adapters>/<name>.gguf`.
    pub fn config(
        &self,
        model: PathBuf,
        data: &Path,
        root: &Path,
        adapters: &Path,
    ) -> TrainWriteConfig {
        let mut c = TrainWriteConfig::new(model, self.sources(data));
        c.runs_dir = root.to_path_buf();
        c.out = Some(adapters.join(format!("{}.gguf", adapter_stem(&self.name))));
        c.rank = self.rank;
        c.alpha = self.alpha;
        c.targets.clone_from(&self.targets);
        c.steps = (self.steps > 0).then_some(self.steps);
        c.context = self.context;
        c.batch = self.batch;
        c.lr = self.lr;
        c.eval_every = self.eval_every.max(1);
        c.sample_every = self.sample_every;
        c.seed = self.seed;
        c
    }
}

/// A file stem from a name the user typed: letters, digits, `-` and `_`; others become `-`.
pub fn adapter_stem(name: &str) -> String {
    let stem: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if stem.trim_matches('-').is_empty() {
        "adapter".into()
    } else {
        stem
    }
}

/// The machine's cores (the default budget: the run's threads have a lower priority than the
/// window and yield to interactive jobs, so all of them can be offered).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_names_become_safe_file_stems() {
        assert_eq!(adapter_stem("my voice/../x"), "my-voice----x");
        assert_eq!(adapter_stem("  "), "adapter");
        assert_eq!(adapter_stem("Milton_2"), "Milton_2");
    }

    #[test]
    fn the_pictures_form_exports_into_its_run_folder() {
        let mut f = PicturesForm::default();
        assert!(f.config(Path::new("/r")).is_none());
        f.source = Some(PictureSource::Folder("/pics".into()));
        f.start = Start::Scratch;
        let c = f.config(Path::new("/r")).unwrap();
        assert!(c.run_dir.starts_with("/r"));
        assert_eq!(c.export, Some(c.run_dir.join(GENERATOR_FILE)));
        assert_eq!(c.settings.start, StartFrom::Scratch);
        assert_eq!(c.steps, 300);
    }

    #[test]
    fn the_writing_form_saves_into_the_adapters_folder() {
        let mut f = WritingForm::default();
        f.files.push("/a.txt".into());
        f.documents.push("doc1".into());
        let c = f.config(
            "/m.gguf".into(),
            Path::new("/d"),
            Path::new("/r"),
            Path::new("/ad"),
        );
        assert_eq!(c.out, Some(PathBuf::from("/ad/my-voice.gguf")));
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.steps, None);
    }
}
