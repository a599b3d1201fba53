//! Sample grids (PNG) and the progress animation (GIF), checked by decoding what was written.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use gan_gpu::Error;
use gan_gpu::images::{GAP_LEVEL, assemble_gif, frames_in_dir, grid_png, to_gray};

/// Decodes a PNG to (width, height, color type, bit depth, pixels).
fn decode_png(path: &Path) -> (u32, u32, png::ColorType, png::BitDepth, Vec<u8>) {
    let decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (
        info.width,
        info.height,
        info.color_type,
        info.bit_depth,
        buf,
    )
}

/// The generator output that maps to gray level `g`.
fn value_for_gray(g: u8) -> f32 {
    f32::from(g) / 127.5 - 1.0
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn maps_generator_outputs_to_gray_levels_by_rounding_and_clamping() {
    assert_eq!(to_gray(-1.0), 0);
    assert_eq!(to_gray(0.0), 128); // 127.5 rounds away from zero
    assert_eq!(to_gray(1.0), 255);
    assert_eq!(to_gray(-7.0), 0);
    assert_eq!(to_gray(3.0), 255);
    assert_eq!(to_gray(f32::NAN), 0);
    assert!((0..=255u8).all(|g| to_gray(value_for_gray(g)) == g));
}

#[test]
fn grid_png_decodes_to_the_expected_size_layout_and_pixels() {
    // Three 4x5 images in a 2x2 grid at scale 3; the fourth cell stays empty.
    let (h, w, scale) = (4usize, 5usize, 3usize);
    let images: Vec<f32> = (0..3 * h * w)
        .map(|i| value_for_gray((i * 5 % 256) as u8))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnist_100.png");
    grid_png(&images, 2, 2, h, w, scale as u32, &path).unwrap();

    let (width, height, color, depth, pixels) = decode_png(&path);
    assert_eq!(
        (width, height),
        (((2 * 5 + 2) * 3) as u32, ((2 * 4 + 2) * 3) as u32)
    );
    assert_eq!(
        (color, depth),
        (png::ColorType::Grayscale, png::BitDepth::Eight)
    );
    let at = |x: usize, y: usize| pixels[y * width as usize + x];

    // Every output pixel is its source pixel, repeated scale x scale times.
    for cell in 0..4 {
        let (top, left) = ((cell / 2) * (h + 2), (cell % 2) * (w + 2));
        for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
            let expected = if cell < 3 {
                ((cell * h * w + y * w + x) * 5 % 256) as u8
            } else {
                0
            };
            for (dy, dx) in [(0, 0), (2, 2), (1, 2)] {
                let got = at((left + x) * scale + dx, (top + y) * scale + dy);
                assert_eq!(got, expected, "cell {cell} pixel ({y}, {x})");
            }
        }
    }
    // The 2-pixel gaps (scaled to 6) between cells.
    assert!((0..height as usize).all(|y| (w * 3..(w + 2) * 3).all(|x| at(x, y) == GAP_LEVEL)));
    assert!((0..width as usize).all(|x| (h * 3..(h + 2) * 3).all(|y| at(x, y) == GAP_LEVEL)));

    // Written atomically: no temporary file left next to it.
    assert_eq!(names_in(dir.path()), ["mnist_100.png"]);
}

#[test]
fn grid_png_rejects_more_images_than_cells_and_partial_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let five = vec![0.0; 5 * 4];
    assert!(matches!(
        grid_png(&five, 2, 2, 2, 2, 1, &path),
        Err(Error::ShapeMismatch { .. })
    ));
    let partial = vec![0.0; 4 + 1];
    assert!(matches!(
        grid_png(&partial, 2, 2, 2, 2, 1, &path),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        grid_png(&[0.0; 4], 1, 1, 2, 2, 0, &path),
        Err(Error::Config(_))
    ));
    assert!(names_in(dir.path()).is_empty());
}

/// Writes `count` 1x1-grid frames of 16x16 pixels whose gray levels together cover 0-255.
fn write_frames(dir: &Path, count: usize) -> (Vec<PathBuf>, Vec<Vec<u8>>) {
    let mut paths = Vec::new();
    let mut grays = Vec::new();
    for k in 0..count {
        let gray: Vec<u8> = (0..256).map(|i| ((i + 37 * k) % 256) as u8).collect();
        let values: Vec<f32> = gray.iter().map(|&g| value_for_gray(g)).collect();
        let path = dir.join(format!("mnist_{}.png", (k + 1) * 500));
        grid_png(&values, 1, 1, 16, 16, 1, &path).unwrap();
        paths.push(path);
        grays.push(gray);
    }
    (paths, grays)
}

#[test]
fn gif_has_every_frame_with_the_delay_loop_and_exact_gray_palette() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, grays) = write_frames(dir.path(), 3);
    let gif_path = dir.path().join("progress.gif");
    assemble_gif(&frames, &gif_path, 0.5).unwrap();

    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options
        .read_info(BufReader::new(File::open(&gif_path).unwrap()))
        .unwrap();
    let ramp: Vec<u8> = (0..=255u8).flat_map(|g| [g, g, g]).collect();
    assert_eq!(decoder.global_palette(), Some(&ramp[..]));
    assert_eq!((decoder.width(), decoder.height()), (16, 16));

    let mut decoded = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!(frame.delay, 50, "0.5 s is 50 hundredths");
        assert!(frame.palette.is_none(), "frames use the global palette");
        decoded.push(frame.buffer.to_vec());
    }
    assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
    assert_eq!(decoded.len(), 3);
    // Index = gray level, so the indices are the PNG pixels exactly.
    assert_eq!(decoded, grays);
    for (path, gray) in frames.iter().zip(&grays) {
        assert_eq!(&decode_png(path).4, gray);
    }
}

#[test]
fn gif_delay_is_the_frame_time_rounded_to_hundredths() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, _) = write_frames(dir.path(), 1);
    for (seconds, hundredths) in [(0.123, 12u16), (0.126, 13), (2.0, 200), (0.0, 0)] {
        let path = dir.path().join("out.gif");
        assemble_gif(&frames, &path, seconds).unwrap();
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut decoder = options.read_info(File::open(&path).unwrap()).unwrap();
        assert_eq!(
            decoder.read_next_frame().unwrap().unwrap().delay,
            hundredths,
            "{seconds} s"
        );
    }
    let path = dir.path().join("bad.gif");
    assert!(matches!(
        assemble_gif(&frames, &path, -1.0),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        assemble_gif(&frames, &path, f64::NAN),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        assemble_gif(&[], &path, 0.5),
        Err(Error::Config(_))
    ));
}

#[test]
fn gif_rejects_frames_of_different_sizes_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut frames, _) = write_frames(dir.path(), 2);
    let odd = dir.path().join("mnist_9000.png");
    grid_png(&[0.0; 4 * 4], 1, 1, 4, 4, 1, &odd).unwrap();
    frames.push(odd);

    let gif_path = dir.path().join("progress.gif");
    let err = assemble_gif(&frames, &gif_path, 0.5).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("mnist_9000.png") && message.contains("4x4"),
        "{message}"
    );
    assert!(message.contains("16x16"), "{message}");
    assert!(!gif_path.exists(), "no partial GIF");
}

#[test]
fn gif_rejects_a_frame_that_is_not_grayscale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb_1.png");
    let mut encoder = png::Encoder::new(File::create(&path).unwrap(), 2, 2);
    encoder.set_color(png::ColorType::Rgb);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&[0; 12])
        .unwrap();

    let err = assemble_gif(&[path], dir.path().join("out.gif"), 0.5).unwrap_err();
    assert!(err.to_string().contains("rgb_1.png"), "{err}");
    assert!(err.to_string().contains("grayscale"), "{err}");
}

#[test]
fn frames_are_ordered_by_the_number_in_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "mnist_10000.png",
        "mnist_5000.png",
        "mnist_500.png",
        "mnist_0.png",
        "run2_step_750.PNG",
    ];
    for name in names {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    for other in [
        "notes.txt",
        ".mnist_7.png.123.0.tmp",
        ".hidden_3.png",
        "final.png",
    ] {
        std::fs::write(dir.path().join(other), b"").unwrap();
    }

    let frames = frames_in_dir(dir.path()).unwrap();
    let names: Vec<_> = frames
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mnist_0.png",
            "mnist_500.png",
            "run2_step_750.PNG",
            "mnist_5000.png",
            "mnist_10000.png",
            "final.png"
        ]
    );
}

#[test]
fn frames_in_an_empty_folder_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log.csv"), b"").unwrap();
    let err = frames_in_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no PNG frames"), "{err}");
}

#[test]
fn grid_png_rejects_sizes_that_overflow_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let huge = usize::MAX / 2;
    assert!(matches!(
        grid_png(&[], huge, huge, 28, 28, 4, &path),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        grid_png(&[], 5, 5, 28, 28, u32::MAX, &path),
        Err(Error::Config(_))
    ));
    assert!(names_in(dir.path()).is_empty());
}
