//! MNIST-format IDX data: reading, validating and fetching it.
//!
//! MNIST and Fashion-MNIST ship as the same four IDX files (training images and labels, test
//! images and labels), usually gzipped. Training only needs the images; the labels, when
//! present, are read too so that a mismatched or corrupt pair is caught before hours of
//! training rather than never.

pub mod download;
pub mod idx;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use idx::{Images, ImagesWriter, read_images, read_labels};

/// Everything that can go wrong finding, fetching or reading the data. Each message names the
/// file and says what was expected, and where a likely cause is known, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },

    #[error("{path}: the file is empty, probably left by an interrupted download; delete it")]
    EmptyFile { path: PathBuf },

    #[error(
        "{path}: looks like an HTML page, not IDX data; probably a failed download (an error or \
         login page saved under the data file's name). Delete it and download again"
    )]
    HtmlPage { path: PathBuf },

    #[error("{path}: is a Git LFS pointer, not the data itself; run `git lfs pull`")]
    LfsPointer { path: PathBuf },

    #[error(
        "{path}: gzip data ends early ({error}); the file was probably cut short by an \
         interrupted download. Delete it and download again"
    )]
    TruncatedGzip { path: PathBuf, error: io::Error },

    #[error("{path}: corrupt gzip data ({error}); delete it and download again")]
    CorruptGzip { path: PathBuf, error: io::Error },

    #[error(
        "{path}: only {len} bytes, too short for the {needed}-byte header of an IDX {kind} file"
    )]
    ShortHeader {
        path: PathBuf,
        kind: IdxKind,
        len: usize,
        needed: usize,
    },

    #[error(
        "{path}: not an IDX {kind} file: magic number is 0x{found:08x} ({found}), expected \
         0x{expected:08x} ({expected})"
    )]
    BadMagic {
        path: PathBuf,
        kind: IdxKind,
        found: u32,
        expected: u32,
    },

    #[error(
        "{path}: magic number 0x{found:08x} ({found}) declares {} dimension(s), but an IDX {kind} \
         file has {} (magic 0x{expected:08x} / {expected}){}",
        .found & 0xff, .expected & 0xff, other_kind_hint(*.kind, *.found)
    )]
    WrongDimensions {
        path: PathBuf,
        kind: IdxKind,
        found: u32,
        expected: u32,
    },

    #[error(
        "{path}: images are {rows}x{cols} pixels, expected {}x{}",
        idx::ROWS,
        idx::COLS
    )]
    ImageSize { path: PathBuf, rows: u32, cols: u32 },

    #[error(
        "{path}: header promises {promised} {kind}, data holds {holds}{}",
        stray_note(*.stray_bytes)
    )]
    CountMismatch {
        path: PathBuf,
        kind: IdxKind,
        promised: u64,
        holds: u64,
        stray_bytes: u64,
    },

    #[error(
        "{path}: label at index {index} is {value}, expected 0-9 ({bad} of {count} labels out \
         of range)"
    )]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        value: u8,
        bad: usize,
        count: usize,
    },

    #[error(
        "{images_path} holds {images} images but {labels_path} holds {labels} labels; they must \
         be the same set (remove the labels file to train without labels)"
    )]
    LabelCount {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    #[error("{path}: holds no images")]
    NoImages { path: PathBuf },

    #[error("{dir}: no such directory")]
    NoSuchDir { dir: PathBuf },

    #[error(
        "{dir}: no {dataset} training images found; looked for {}. Put the files there, or leave \
         out --data to download them into the cache",
        .looked_for.join(", ")
    )]
    MissingFiles {
        dir: PathBuf,
        dataset: Dataset,
        looked_for: Vec<String>,
    },

    #[error(
        "this system has no per-user cache directory to download into; set GAN_GPU_CACHE_DIR or \
         pass --data with a folder holding the data"
    )]
    NoCacheDir,

    #[error("mirror '{url}' is not an http:// or https:// URL (for local files use --data)")]
    BadMirror { url: String },

    #[error("{url}: {message}")]
    Http { url: String, message: String },

    #[error("{url}: checksum mismatch for {file}: expected sha256 {expected}, got {actual}")]
    Checksum {
        file: String,
        url: String,
        expected: String,
        actual: String,
    },

    #[error("{}", describe_download_failure(.file, .dir, .attempts))]
    DownloadFailed {
        file: String,
        dir: PathBuf,
        attempts: Vec<DataError>,
    },
}

/// Which of the two IDX layouts a file should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    Images,
    Labels,
}

impl fmt::Display for IdxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        })
    }
}

fn other_kind_hint(kind: IdxKind, found: u32) -> &'static str {
    match (kind, found) {
        (IdxKind::Images, idx::LABELS_MAGIC) => "; this looks like a labels file",
        (IdxKind::Labels, idx::IMAGES_MAGIC) => "; this looks like an images file",
        _ => "",
    }
}

fn stray_note(stray_bytes: u64) -> String {
    match stray_bytes {
        0 => String::new(),
        n => format!(" and {n} stray byte(s)"),
    }
}

fn describe_download_failure(file: &str, dir: &Path, attempts: &[DataError]) -> String {
    let mut text = format!("could not download {file} into {}; tried:", dir.display());
    for attempt in attempts {
        text.push_str(&format!("\n  - {attempt}"));
    }
    text.push_str(
        "\nDownload the files by hand into a folder and pass it with --data, or pass \
         --mirror with another base URL",
    );
    text
}

/// One published data file: its name on the mirrors and the SHA-256 of those (gzipped) bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

impl DataFile {
    /// The file name without `.gz`, e.g. `train-images-idx3-ubyte`.
    pub fn stem(&self) -> &'static str {
        self.name.strip_suffix(".gz").unwrap_or(self.name)
    }

    /// Every name the file goes by: raw and gzipped, with the usual `-idx3` and the
    /// `.idx3` spelling some copies use. Raw first, so an unpacked copy is preferred.
    pub fn spellings(&self) -> Vec<String> {
        let stem = self.stem();
        let dotted = stem.replacen("-idx", ".idx", 1);
        vec![
            stem.to_string(),
            format!("{stem}.gz"),
            dotted.clone(),
            format!("{dotted}.gz"),
        ]
    }
}

/// The datasets we know the files, checksums and mirrors of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    Mnist,
    FashionMnist,
}

const MNIST_FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    DataFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    DataFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    DataFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

const FASHION_MNIST_FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    },
    DataFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    },
    DataFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    },
    DataFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
];

impl Dataset {
    /// Short lowercase identifier, used on the command line and as the cache folder name.
    pub fn id(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// All four published files: train images, train labels, test images, test labels.
    pub fn files(self) -> [DataFile; 4] {
        match self {
            Dataset::Mnist => MNIST_FILES,
            Dataset::FashionMnist => FASHION_MNIST_FILES,
        }
    }

    pub fn train_images(self) -> DataFile {
        self.files()[0]
    }

    pub fn train_labels(self) -> DataFile {
        self.files()[1]
    }

    /// Base URLs of the public mirrors, tried in order; a file's name is appended to each.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Dataset::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            // Plain http: this bucket's website endpoint has no TLS. The SHA-256 check is what
            // makes the bytes trustworthy either way.
            Dataset::FashionMnist => {
                &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
            }
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        })
    }
}

impl FromStr for Dataset {
    type Err = String;

    /// Accepts `mnist`, `fashion-mnist`, `fashion_mnist` and `fashion`, in any case.
    fn from_str(s: &str) -> std::result::Result<Dataset, String> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(Dataset::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" | "fashion" => {
                Ok(Dataset::FashionMnist)
            }
            _ => Err(format!(
                "unknown dataset '{s}'; expected mnist or fashion-mnist"
            )),
        }
    }
}

/// Where a dataset's training files were found. The labels are optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFiles {
    pub images: PathBuf,
    pub labels: Option<PathBuf>,
}

/// The first existing spelling of `file` in `dir`.
fn find_one(dir: &Path, file: &DataFile) -> Option<PathBuf> {
    file.spellings()
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Finds the training images (required) and labels (optional) of `dataset` in `dir`, under any
/// of the names in [`DataFile::spellings`]. Missing images are an error that lists every name
/// looked for.
pub fn find_files(dir: &Path, dataset: Dataset) -> Result<DatasetFiles, DataError> {
    if !dir.is_dir() {
        return Err(DataError::NoSuchDir {
            dir: dir.to_path_buf(),
        });
    }
    let images_file = dataset.train_images();
    let images = find_one(dir, &images_file).ok_or_else(|| DataError::MissingFiles {
        dir: dir.to_path_buf(),
        dataset,
        looked_for: images_file.spellings(),
    })?;
    let labels = find_one(dir, &dataset.train_labels());
    Ok(DatasetFiles { images, labels })
}

/// The per-user folder downloads of `dataset` go to: `$GAN_GPU_CACHE_DIR/<dataset>` when that
/// variable is set (CI, tests, shared machines), else `<user cache dir>/gan-gpu/<dataset>`
/// (`~/.cache/gan-gpu/mnist` on Linux).
pub fn cache_dir(dataset: Dataset) -> Result<PathBuf, DataError> {
    let base = match std::env::var_os("GAN_GPU_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .ok_or(DataError::NoCacheDir)?
            .join("gan-gpu"),
    };
    Ok(base.join(dataset.id()))
}

/// The training images, their labels when present, and the images file they came from.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub images: Images,
    pub labels: Option<Vec<u8>>,
    /// The images file that was read.
    pub source: PathBuf,
}

/// Loads the training set of `dataset`.
///
/// With `dir`, the files must already be there (a missing file is an error naming the names
/// looked for; nothing is downloaded and `mirror` is unused). Without it, the per-user
/// [`cache_dir`] is used and missing files are downloaded, from `mirror` if given (a base URL
/// the file name is appended to), else from the dataset's public mirrors, with a progress bar
/// when `progress` is set. Labels are optional, but when present they must be valid and as
/// many as the images.
pub fn load_training_set(
    dir: Option<&Path>,
    dataset: Dataset,
    mirror: Option<&str>,
    progress: bool,
) -> Result<TrainingSet, DataError> {
    // Locate, downloading into the cache if no folder was given.
    let files = match dir {
        Some(dir) => {
            if mirror.is_some() {
                log::warn!("--mirror is ignored because a data directory was given");
            }
            find_files(dir, dataset)?
        }
        None => {
            let cache = cache_dir(dataset)?;
            download::ensure_training_files(&cache, dataset, mirror, progress)?;
            find_files(&cache, dataset)?
        }
    };

    // Read and cross-check.
    let images = read_images(&files.images)?;
    if images.count == 0 {
        return Err(DataError::NoImages { path: files.images });
    }
    let labels = match &files.labels {
        Some(path) => {
            let labels = read_labels(path)?;
            if labels.len() != images.count {
                return Err(DataError::LabelCount {
                    images_path: files.images,
                    images: images.count,
                    labels_path: path.clone(),
                    labels: labels.len(),
                });
            }
            Some(labels)
        }
        None => {
            log::info!(
                "no labels file next to {}; training without",
                files.images.display()
            );
            None
        }
    };

    log::info!(
        "{dataset}: {} images of {}x{} from {}",
        images.count,
        images.rows,
        images.cols,
        files.images.display()
    );
    Ok(TrainingSet {
        images,
        labels,
        source: files.images,
    })
}
