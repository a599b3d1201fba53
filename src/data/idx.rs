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
