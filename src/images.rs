//! Sample grids as PNG and training progress as GIF.
//!
//! Grids are 8-bit grayscale. The GIF uses one global palette whose index i is the gray level
//! i, so a grid's gray bytes become GIF indices unchanged: no quantisation, no dithering, and
//! the animation shows exactly the pixels of the PNGs it was made from.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::{Error, Result, fsutil};

/// Gap between grid cells, in source pixels (scaled along with the images).
pub const GRID_GAP: usize = 2;
/// Gray level of the gaps: mid-gray, so cell edges show against both the black background of
/// MNIST digits and the white of a saturated sample.
pub const GAP_LEVEL: u8 = 128;

/// Maps a generator output in [-1, 1] to a gray level: round((x + 1) * 127.5), clamped to
/// 0..=255. NaN maps to 0.
pub fn to_gray(x: f32) -> u8 {
    // `as u8` saturates and sends NaN to 0.
    ((x + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// Writes `images` as a `rows x cols` grid to an 8-bit grayscale PNG at `path` (atomically).
///
/// `images` is `[count, image_h * image_w]` row-major with values in [-1, 1] (the tanh output);
/// `count <= rows * cols`, filled row by row, unused cells stay black. Cells are separated by
/// [`GRID_GAP`] pixels of [`GAP_LEVEL`], then the whole grid is upscaled `scale` times by
/// nearest neighbour, so the PNG is
/// `(cols * image_w + (cols - 1) * GRID_GAP) * scale` wide and likewise high.
pub fn grid_png(
    images: &[f32],
    rows: usize,
    cols: usize,
    image_h: usize,
    image_w: usize,
    scale: u32,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let grid = render_grid(images, rows, cols, image_h, image_w, scale)?;
    let png = encode_png(
        &grid.pixels,
        grid.width,
        grid.height,
        png::ColorType::Grayscale,
    )
    .map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: format!("encoding PNG: {e}"),
    })?;
    fsutil::write_atomic(path, &png)
}

/// A grayscale image, one byte per pixel, row-major.
struct Gray {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn render_grid(
    images: &[f32],
    rows: usize,
    cols: usize,
    image_h: usize,
    image_w: usize,
    scale: u32,
) -> Result<Gray> {
    let shape_error = |expected: String, got: String| Error::ShapeMismatch {
        op: "grid_png".to_string(),
        expected,
        got,
    };
    if rows == 0 || cols == 0 || image_h == 0 || image_w == 0 || scale == 0 {
        return Err(Error::Config(format!(
            "grid_png: rows ({rows}), cols ({cols}), image size ({image_h}x{image_w}) and scale \
             ({scale}) must all be at least 1"
        )));
    }
    // Sizes come from the command line: check every product rather than trust them.
    let s = scale as usize;
    let too_big = || {
        Error::Config(format!(
            "grid_png: a {rows}x{cols} grid of {image_h}x{image_w} images at scale {s} is too large"
        ))
    };
    let image_len = image_h.checked_mul(image_w).ok_or_else(too_big)?;
    let cells = rows.checked_mul(cols).ok_or_else(too_big)?;
    let side = |n: usize, len: usize| {
        let pitch = len.checked_add(GRID_GAP)?;
        Some(n.checked_mul(pitch)? - GRID_GAP)
    };
    let src_w = side(cols, image_w).ok_or_else(too_big)?;
    let src_h = side(rows, image_h).ok_or_else(too_big)?;
    let (width, height) = match (src_w.checked_mul(s), src_h.checked_mul(s)) {
        (Some(w), Some(h)) if w.checked_mul(h).is_some() => (w, h),
        _ => return Err(too_big()),
    };
    let width_u32 = u32::try_from(width).map_err(|_| too_big())?;
    let height_u32 = u32::try_from(height).map_err(|_| too_big())?;

    let count = images.len() / image_len;
    if !images.len().is_multiple_of(image_len) || count > cells {
        return Err(shape_error(
            format!("at most {rows}x{cols} images of {image_h}x{image_w} values"),
            format!(
                "{} values ({:.2} images)",
                images.len(),
                images.len() as f64 / image_len as f64
            ),
        ));
    }

    // Lay out at source size: cell (r, c) starts at (r * (image_h + gap), c * (image_w + gap)).
    let mut src = vec![GAP_LEVEL; src_w * src_h];
    for cell in 0..cells {
        let (top, left) = (
            (cell / cols) * (image_h + GRID_GAP),
            (cell % cols) * (image_w + GRID_GAP),
        );
        let image = (cell < count).then(|| &images[cell * image_len..][..image_len]);
        for y in 0..image_h {
            let row = &mut src[(top + y) * src_w + left..][..image_w];
            match image {
                Some(image) => {
                    let values = &image[y * image_w..][..image_w];
                    row.iter_mut()
                        .zip(values)
                        .for_each(|(p, &x)| *p = to_gray(x));
                }
                None => row.fill(0),
            }
        }
    }

    // Upscale by nearest neighbour: repeat every pixel `scale` times, every row `scale` times.
    let mut pixels = Vec::with_capacity(width * height);
    for src_row in src.chunks_exact(src_w) {
        let start = pixels.len();
        src_row
            .iter()
            .for_each(|&p| pixels.extend(std::iter::repeat_n(p, s)));
        for _ in 1..s {
            pixels.extend_from_within(start..start + width);
        }
    }
    Ok(Gray {
        width: width_u32,
        height: height_u32,
        pixels,
    })
}

/// An 8-bit PNG of `pixels` (row-major, `color`'s channels per pixel), in memory.
pub(crate) fn encode_png(
    pixels: &[u8],
    width: u32,
    height: u32,
    color: png::ColorType,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Decodes an 8-bit grayscale PNG (lower bit depths are expanded, 16-bit is stripped to 8).
fn read_gray_png(path: &Path) -> Result<Gray> {
    let file_error = |message: String| Error::File {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| file_error(format!("decoding PNG: {e}")))?;

    let len = reader
        .output_buffer_size()
        .ok_or_else(|| file_error("PNG too large".into()))?;
    let mut buf = vec![0; len];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| file_error(format!("decoding PNG: {e}")))?;
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
        return Err(file_error(format!(
            "is {:?} with {:?} bits per sample; expected 8-bit grayscale (as grid_png writes)",
            info.color_type, info.bit_depth
        )));
    }
    buf.truncate(info.buffer_size());
    Ok(Gray {
        width: info.width,
        height: info.height,
        pixels: buf,
    })
}

/// Assembles grayscale PNG `frames` (all the same size) into a GIF at `output` that loops
/// forever, showing each frame for `frame_seconds` (stored in hundredths of a second, rounded:
/// 0.5 s is a delay of 50). The palette is the exact 256-level gray ramp, so pixel values are
/// kept exactly. Written atomically.
pub fn assemble_gif(
    frames: &[PathBuf],
    output: impl AsRef<Path>,
    frame_seconds: f64,
) -> Result<()> {
    let output = output.as_ref();
    let Some(first_path) = frames.first() else {
        return Err(Error::Config(format!(
            "{}: no frames to assemble",
            output.display()
        )));
    };
    let delay = gif_delay(frame_seconds)?;

    // The first frame fixes the size; GIF sizes are 16-bit.
    let first = read_gray_png(first_path)?;
    let (width, height) = gif_size(&first).map_err(|message| Error::File {
        path: first_path.clone(),
        message,
    })?;
    let mut gif = GrayGif::new(width, height, delay, output)?;

    // One frame at a time, so memory holds one decoded frame plus the compressed output.
    let size = (first.width, first.height);
    let mut frame = Some(first);
    for path in frames {
        let image = match frame.take() {
            Some(image) => image,
            None => read_gray_png(path)?,
        };
        if (image.width, image.height) != size {
            return Err(Error::File {
                path: path.clone(),
                message: format!(
                    "is {}x{}, but {} is {width}x{height}; all frames must be the same size",
                    image.width,
                    image.height,
                    first_path.display()
                ),
            });
        }
        gif.push(image.pixels)?;
    }
    gif.finish()
}

/// A looping GIF of sample grids made in memory (e.g. a walk through latent space), each
/// frame laid out as [`grid_png`] lays out a PNG, with the same exact gray palette.
/// [`GridGif::finish`] writes it atomically.
pub struct GridGif {
    gif: GrayGif,
    rows: usize,
    cols: usize,
    image_h: usize,
    image_w: usize,
    scale: u32,
}

impl GridGif {
    /// A GIF of `rows x cols` grids of `image_h x image_w` images upscaled `scale` times,
    /// each frame shown `frame_seconds`, to be written to `output`.
    pub fn new(
        rows: usize,
        cols: usize,
        image_h: usize,
        image_w: usize,
        scale: u32,
        frame_seconds: f64,
        output: impl AsRef<Path>,
    ) -> Result<Self> {
        let output = output.as_ref();
        let delay = gif_delay(frame_seconds)?;
        let empty = render_grid(&[], rows, cols, image_h, image_w, scale)?;
        let (width, height) = gif_size(&empty).map_err(|message| Error::File {
            path: output.to_path_buf(),
            message,
        })?;
        Ok(GridGif {
            gif: GrayGif::new(width, height, delay, output)?,
            rows,
            cols,
            image_h,
            image_w,
            scale,
        })
    }

    /// Adds one frame: up to `rows * cols` images in [-1, 1], as for [`grid_png`].
    pub fn push(&mut self, images: &[f32]) -> Result<()> {
        let grid = render_grid(
            images,
            self.rows,
            self.cols,
            self.image_h,
            self.image_w,
            self.scale,
        )?;
        self.gif.push(grid.pixels)
    }

    /// Frames added so far.
    pub fn frames(&self) -> usize {
        self.gif.frames
    }

    /// Writes the GIF (atomically).
    pub fn finish(self) -> Result<()> {
        self.gif.finish()
    }
}

/// A GIF frame time in hundredths of a second.
fn gif_delay(frame_seconds: f64) -> Result<u16> {
    let delay = (frame_seconds * 100.0).round();
    if !(0.0..=f64::from(u16::MAX)).contains(&delay) {
        return Err(Error::Config(format!(
            "GIF frame time must be between 0 and 655.35 seconds, got {frame_seconds}"
        )));
    }
    Ok(delay as u16)
}

/// An image's size as a GIF stores it (16-bit).
fn gif_size(image: &Gray) -> std::result::Result<(u16, u16), String> {
    match (u16::try_from(image.width), u16::try_from(image.height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(format!(
            "{}x{} is larger than a GIF allows (65535x65535)",
            image.width, image.height
        )),
    }
}

/// A looping gray-palette GIF being encoded in memory, frame by frame.
struct GrayGif {
    encoder: gif::Encoder<Vec<u8>>,
    output: PathBuf,
    width: u16,
    height: u16,
    delay: u16,
    frames: usize,
}

impl GrayGif {
    fn new(width: u16, height: u16, delay: u16, output: &Path) -> Result<Self> {
        let palette: Vec<u8> = (0..=255u8).flat_map(|g| [g, g, g]).collect();
        let error = gif_error(output);
        let mut encoder = gif::Encoder::new(Vec::new(), width, height, &palette).map_err(&error)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(&error)?;
        Ok(GrayGif {
            encoder,
            output: output.to_path_buf(),
            width,
            height,
            delay,
            frames: 0,
        })
    }

    /// One frame of `width * height` gray levels.
    fn push(&mut self, pixels: Vec<u8>) -> Result<()> {
        let mut frame = gif::Frame::from_indexed_pixels(self.width, self.height, pixels, None);
        frame.delay = self.delay;
        self.encoder
            .write_frame(&frame)
            .map_err(gif_error(&self.output))?;
        self.frames += 1;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        // Writes the GIF trailer.
        let out = self.encoder.into_inner().map_err(gif_error(&self.output))?;
        fsutil::write_atomic(&self.output, &out)
    }
}

fn gif_error(output: &Path) -> impl Fn(gif::EncodingError) -> Error + '_ {
    move |e| Error::File {
        path: output.to_path_buf(),
        message: format!("encoding GIF: {e}"),
    }
}

/// The PNG files in `dir`, ordered by the last number in their names (`mnist_5000.png` before
/// `mnist_10000.png`), then by name; names without a number come last. Hidden files (such as
/// the temporaries of an atomic write) are skipped. No PNG at all is an error.
pub fn frames_in_dir(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut frames = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png && !name.starts_with('.') && path.is_file() {
            frames.push((frame_key(&name), path));
        }
    }
    if frames.is_empty() {
        return Err(Error::File {
            path: dir.to_path_buf(),
            message: "no PNG frames found (expected sample grids such as mnist_5000.png)".into(),
        });
    }
    frames.sort();
    Ok(frames.into_iter().map(|(_, path)| path).collect())
}

/// Sort key: (has no number, digit count, digits, name), with leading zeros dropped so that
/// comparing (length, digits) compares the numbers exactly, however long.
fn frame_key(name: &str) -> (bool, usize, String, String) {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let end = stem.rfind(|c: char| c.is_ascii_digit()).map(|i| i + 1);
    let Some(end) = end else {
        return (true, 0, String::new(), name.to_string());
    };
    let start = stem[..end]
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let digits = stem[start..end].trim_start_matches('0');
    (false, digits.len(), digits.to_string(), name.to_string())
}
