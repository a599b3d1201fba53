//! A small MNIST-format training set written on the fly, and running the binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use gan_gpu::rng::random_bits;

/// A gzipped IDX image file of `count` random-stroke 28x28 images and its labels, in `dir`.
pub fn write_fixture(dir: &Path, count: usize) {
    write_fixture_seeded(dir, count, 5);
}

/// Like [`write_fixture`], with other pixels for another `seed`.
pub fn write_fixture_seeded(dir: &Path, count: usize, seed: u64) {
    let mut images = vec![0, 0, 8, 3];
    for v in [count as u32, 28, 28] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    images.extend((0..count * 784).map(|i| {
        let bits = random_bits(seed, 0, 0, i as u32)[0];
        if bits.is_multiple_of(4) {
            (bits >> 8) as u8
        } else {
            0
        }
    }));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(count as u32).to_be_bytes());
    labels.extend((0..count).map(|i| (i % 10) as u8));
    for (name, bytes) in [
        ("train-images-idx3-ubyte.gz", images),
        ("train-labels-idx1-ubyte.gz", labels),
    ] {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        gz.finish().unwrap();
    }
}

/// The gan-gpu binary of this build, with info logging.
pub fn gan_gpu_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gan-gpu"));
    cmd.args(args).env("RUST_LOG", "info");
    cmd
}

/// Runs gan-gpu to the end.
pub fn gan_gpu(args: &[&str]) -> Output {
    gan_gpu_command(args).output().expect("running gan-gpu")
}

/// Its stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Width and height of a PNG file.
pub fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    ));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}
