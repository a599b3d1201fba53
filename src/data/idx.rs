//! Reading IDX files, raw or gzipped.
//!
//! Layout (all integers big-endian): a 4-byte magic `00 00 08 D` (type 0x08 = unsigned byte, D
//! dimensions), D u32 sizes, then the elements row-major. Images: D = 3 (count, rows, cols),
//! magic 0x00000803; labels: D = 1 (count), magic 0x00000801.
//!
//! Files are checked for everything a wrong download produces (HTML error pages, cut-short
//! gzip streams, headers that promise more than the data holds) so that the message says what
//! happened instead of training on garbage. Gzip is recognised by its magic bytes, not the
//! name, because both spellings get renamed by hand.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::{DataError, IdxKind};

pub const IMAGES_MAGIC: u32 = 0x0000_0803;
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Image height and width. The model is built for MNIST-sized images, so any other size is
/// rejected at load time rather than as a shape error deep in training.
pub const ROWS: usize = 28;
pub const COLS: usize = 28;
/// Largest label value; MNIST and Fashion-MNIST both have ten classes.
pub const MAX_LABEL: u8 = 9;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Upper bound on the buffer reserved from the gzip size trailer, which a cut-short file fills
/// with arbitrary bytes. It is only a hint; larger data still decodes.
const MAX_RESERVE: usize = 256 << 20;

/// Images as stored: `count` images of `rows x cols` u8 pixels (0 = background, 255 = ink),
/// row-major, one after another: `pixels.len() == count * rows * cols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image (`rows * cols`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }
}

/// Reads an IDX images file (raw or gzipped) of 28x28 images.
pub fn read_images(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    let mut bytes = read_maybe_gzipped(path)?;
    let dims = parse_header(path, IdxKind::Images, &bytes, IMAGES_MAGIC)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);

    if (rows as usize, cols as usize) != (ROWS, COLS) {
        return Err(DataError::ImageSize {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let header_len = header_len(IMAGES_MAGIC);
    let data_len = (bytes.len() - header_len) as u64;
    check_count(path, IdxKind::Images, count, data_len, (ROWS * COLS) as u64)?;

    // Drop the header in place: the pixel data is tens of MB, not worth a second copy.
    bytes.drain(..header_len);
    Ok(Images {
        count: count as usize,
        rows: ROWS,
        cols: COLS,
        pixels: bytes,
    })
}

/// Reads an IDX labels file (raw or gzipped); every label must be 0-9.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    let mut bytes = read_maybe_gzipped(path)?;
    let dims = parse_header(path, IdxKind::Labels, &bytes, LABELS_MAGIC)?;
    let header_len = header_len(LABELS_MAGIC);
    let data_len = (bytes.len() - header_len) as u64;
    check_count(path, IdxKind::Labels, dims[0], data_len, 1)?;
    bytes.drain(..header_len);

    // Report the first bad label and how many there are: one bad byte and a wholly wrong
    // file call for different fixes.
    let bad = bytes.iter().filter(|&&label| label > MAX_LABEL).count();
    if let Some(index) = bytes.iter().position(|&label| label > MAX_LABEL) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            value: bytes[index],
            bad,
            count: bytes.len(),
        });
    }
    Ok(bytes)
}

/// The file's bytes, gunzipped if they start with the gzip magic, after ruling out the usual
/// impostors (empty file, HTML page, Git LFS pointer).
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = fs::read(path).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    if raw.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        gunzip(path, &raw)?
    } else {
        raw
    };
    check_not_text(path, &bytes)?;
    Ok(bytes)
}

fn gunzip(path: &Path, gz: &[u8]) -> Result<Vec<u8>, DataError> {
    // The last four bytes hold the uncompressed size mod 2^32: a good capacity hint.
    let size_hint = gz
        .len()
        .checked_sub(4)
        .and_then(|at| gz.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize);
    let mut out = Vec::with_capacity(size_hint.min(MAX_RESERVE));

    GzDecoder::new(gz).read_to_end(&mut out).map_err(|error| {
        let path = path.to_path_buf();
        if error.kind() == io::ErrorKind::UnexpectedEof {
            DataError::TruncatedGzip { path, error }
        } else {
            DataError::CorruptGzip { path, error }
        }
    })?;
    Ok(out)
}

/// IDX starts with a zero byte; text never does. Recognise the two texts that most often end
/// up under a data file's name.
fn check_not_text(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = &text[text.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    if text.starts_with(b"<") {
        // "<!DOCTYPE html", "<html", and S3's "<?xml ...><Error>" pages.
        return Err(DataError::HtmlPage {
            path: path.to_path_buf(),
        });
    }
    if text.starts_with(b"version https://git-lfs") {
        return Err(DataError::LfsPointer {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn header_len(magic: u32) -> usize {
    4 + 4 * (magic & 0xff) as usize
}

/// Checks the magic number and returns the dimension sizes it declares.
fn parse_header(
    path: &Path,
    kind: IdxKind,
    bytes: &[u8],
    expected: u32,
) -> Result<Vec<u32>, DataError> {
    let needed = header_len(expected);
    let short = || DataError::ShortHeader {
        path: path.to_path_buf(),
        kind,
        len: bytes.len(),
        needed,
    };
    let magic = read_u32(bytes, 0).ok_or_else(short)?;

    // `00 00 08 xx` is an unsigned-byte IDX file with the wrong number of dimensions (a labels
    // file given as images, say); anything else is not the IDX we read at all.
    if magic != expected {
        let path = path.to_path_buf();
        return Err(if magic & 0xffff_ff00 == expected & 0xffff_ff00 {
            DataError::WrongDimensions {
                path,
                kind,
                found: magic,
                expected,
            }
        } else {
            DataError::BadMagic {
                path,
                kind,
                found: magic,
                expected,
            }
        });
    }

    let dims = (0..(expected & 0xff) as usize).map(|d| read_u32(bytes, 4 + 4 * d));
    dims.collect::<Option<Vec<u32>>>().ok_or_else(short)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(<[u8; 4]>::try_from(word).ok()?))
}

/// The data after the header must hold exactly `promised` items of `item_len` bytes.
fn check_count(
    path: &Path,
    kind: IdxKind,
    promised: u32,
    data_len: u64,
    item_len: u64,
) -> Result<(), DataError> {
    let (holds, stray_bytes) = (data_len / item_len, data_len % item_len);
    if holds == u64::from(promised) && stray_bytes == 0 {
        return Ok(());
    }
    Err(DataError::CountMismatch {
        path: path.to_path_buf(),
        kind,
        promised: u64::from(promised),
        holds,
        stray_bytes,
    })
}

/// Writes an IDX images file (magic 0x00000803, `count x rows x cols` unsigned bytes),
/// gzipped when the name ends in `.gz`, image by image and atomically: the file appears,
/// complete, when [`ImagesWriter::finish`] is called, and not at all if it is not.
pub struct ImagesWriter {
    sink: Sink,
    path: std::path::PathBuf,
    count: usize,
    image_len: usize,
    written: usize,
}

enum Sink {
    Raw(io::BufWriter<crate::fsutil::AtomicFile>),
    Gzip(flate2::write::GzEncoder<io::BufWriter<crate::fsutil::AtomicFile>>),
}

impl ImagesWriter {
    /// Starts a file of `count` images of `rows x cols` pixels at `path`.
    pub fn create(
        path: impl AsRef<Path>,
        count: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        let io_error = |error| DataError::Io {
            path: path.clone(),
            error,
        };
        let dims = [count, rows, cols].map(u32::try_from);
        let [Ok(n), Ok(r), Ok(c)] = dims else {
            return Err(io_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{count}x{rows}x{cols} images do not fit the 32-bit sizes of IDX"),
            )));
        };
        let file = io::BufWriter::new(crate::fsutil::AtomicFile::create(&path).map_err(io_error)?);
        let gzip = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        let mut sink = if gzip {
            Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            ))
        } else {
            Sink::Raw(file)
        };
        let mut header = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, r, c] {
            header.extend_from_slice(&d.to_be_bytes());
        }
        sink.write_all(&header).map_err(io_error)?;
        Ok(ImagesWriter {
            sink,
            path,
            count,
            image_len: rows * cols,
            written: 0,
        })
    }

    /// Appends images (`image_len` bytes each, any number of them at once).
    pub fn write(&mut self, pixels: &[u8]) -> Result<(), DataError> {
        let images = pixels.len() / self.image_len.max(1);
        if !pixels.len().is_multiple_of(self.image_len.max(1)) || self.written + images > self.count
        {
            return Err(self.error(format!(
                "{} bytes do not make whole images of {} bytes within the {} promised ({} \
                 written)",
                pixels.len(),
                self.image_len,
                self.count,
                self.written
            )));
        }
        self.sink.write_all(pixels).map_err(|error| DataError::Io {
            path: self.path.clone(),
            error,
        })?;
        self.written += images;
        Ok(())
    }

    /// Checks that every promised image was written, then moves the file into place.
    pub fn finish(self) -> Result<(), DataError> {
        if self.written != self.count {
            return Err(self.error(format!(
                "{} of the {} promised images written",
                self.written, self.count
            )));
        }
        let path = self.path;
        let io_error = |error| DataError::Io {
            path: path.clone(),
            error,
        };
        let buffered = match self.sink {
            Sink::Raw(w) => w,
            Sink::Gzip(gz) => gz.finish().map_err(io_error)?,
        };
        let file = buffered
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?;
        file.commit().map_err(io_error)
    }

    fn error(&self, message: String) -> DataError {
        DataError::Io {
            path: self.path.clone(),
            error: io::Error::new(io::ErrorKind::InvalidInput, message),
        }
    }
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match self {
            Sink::Raw(w) => w.write_all(bytes),
            Sink::Gzip(w) => w.write_all(bytes),
        }
    }
}
