//! Pictures of a run's `metrics.csv`: D's and G's losses and D's accuracy against the step.
//!
//! Drawn with `plotters` into memory and written as an RGB PNG. Text is rendered with
//! `ab_glyph` from DejaVu Sans, embedded in the binary (`assets/fonts/`, licence beside it),
//! so neither building nor running needs a system font library.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{Error, Result, fsutil};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

const D_COLOR: RGBColor = RGBColor(214, 39, 40);
const G_COLOR: RGBColor = RGBColor(31, 119, 180);
const ACC_COLOR: RGBColor = RGBColor(44, 160, 44);

/// The columns of `metrics.csv` a plot shows, one entry per logged step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub step: Vec<f64>,
    pub d_loss: Vec<f64>,
    pub g_loss: Vec<f64>,
    pub d_acc: Vec<f64>,
}

impl Metrics {
    /// Reads the `step`, `d_loss`, `g_loss` and `d_acc` columns (found by their header names,
    /// so other columns may come and go).
    pub fn read(path: impl AsRef<Path>) -> Result<Metrics> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|message| Error::File {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Metrics, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or("empty file, expected a metrics.csv header")?;
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let column = |name: &str| {
            columns.iter().position(|c| *c == name).ok_or_else(|| {
                format!("no `{name}` column in the header {header:?} (is this a metrics.csv?)")
            })
        };
        let idx = [
            column("step")?,
            column("d_loss")?,
            column("g_loss")?,
            column("d_acc")?,
        ];
        let mut m = Metrics::default();
        for (number, line) in lines {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let value = |i: usize| -> std::result::Result<f64, String> {
                let field = fields.get(i).ok_or_else(|| {
                    format!(
                        "line {}: {} fields, expected {}",
                        number + 1,
                        fields.len(),
                        columns.len()
                    )
                })?;
                field
                    .parse()
                    .map_err(|_| format!("line {}: {field:?} is not a number", number + 1))
            };
            m.step.push(value(idx[0])?);
            m.d_loss.push(value(idx[1])?);
            m.g_loss.push(value(idx[2])?);
            m.d_acc.push(value(idx[3])?);
        }
        if m.step.is_empty() {
            return Err("no rows to plot yet (only the header)".into());
        }
        Ok(m)
    }

    pub fn len(&self) -> usize {
        self.step.len()
    }

    pub fn is_empty(&self) -> bool {
        self.step.is_empty()
    }
}

/// The trailing moving average over `window` values: entry `i` is the mean of entries
/// `i + 1 - window ..= i` (fewer at the start). Non-finite values are skipped.
pub fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    (0..values.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(window);
            let finite: Vec<f64> = values[from..=i]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if finite.is_empty() {
                f64::NAN
            } else {
                finite.iter().sum::<f64>() / finite.len() as f64
            }
        })
        .collect()
}

/// The window [`plot_metrics`] uses when none is given: a fiftieth of the rows, but at least
/// five (a short run's curve is otherwise drawn unsmoothed) and never more than a fifth of
/// them.
pub fn default_window(rows: usize) -> usize {
    (rows / 50).max(5).min(rows / 5).max(1)
}

/// How a plot looks.
#[derive(Clone, Copy, Debug)]
pub struct PlotOptions {
    pub width: u32,
    pub height: u32,
    /// Rows of the moving average; `None` for [`default_window`].
    pub window: Option<usize>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            width: 1200,
            height: 800,
            window: None,
        }
    }
}

/// Draws `metrics` to an RGB PNG at `output` (atomically): losses above, with the raw values
/// faint and their moving average bold, D's accuracy below, each with axes and a legend.
/// The loss axis ends a little above the 99th percentile of the raw losses (or the highest
/// average), so a few saturated steps do not flatten the rest. Returns the window used.
pub fn plot_metrics(
    metrics: &Metrics,
    output: impl AsRef<Path>,
    opts: PlotOptions,
) -> Result<usize> {
    let output = output.as_ref();
    if opts.width < 200 || opts.height < 200 {
        return Err(Error::Config(format!(
            "a plot must be at least 200x200 pixels, got {}x{}",
            opts.width, opts.height
        )));
    }
    let window = opts
        .window
        .unwrap_or_else(|| default_window(metrics.len()))
        .max(1);
    let (w, h) = (opts.width, opts.height);
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    draw(metrics, window, &mut rgb, (w, h)).map_err(|message| Error::File {
        path: output.to_path_buf(),
        message: format!("drawing the plot: {message}"),
    })?;
    let png =
        crate::images::encode_png(&rgb, w, h, png::ColorType::Rgb).map_err(|e| Error::File {
            path: output.to_path_buf(),
            message: format!("encoding PNG: {e}"),
        })?;
    fsutil::write_atomic(output, &png)?;
    Ok(window)
}

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType font, compiled in; a failure here is a build error.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            log::error!("the embedded plot font could not be loaded");
        }
    });
}

fn draw(
    m: &Metrics,
    window: usize,
    rgb: &mut [u8],
    size: (u32, u32),
) -> std::result::Result<(), String> {
    register_font();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically((size.1 as f64 * 0.6) as u32);

    let (x0, x1) = (m.step[0], *m.step.last().unwrap_or(&m.step[0]));
    let x_range = if x1 > x0 { x0..x1 } else { x0..x0 + 1.0 };
    let avg = |v: &[f64]| moving_average(v, window);
    let (d_avg, g_avg, acc_avg) = (avg(&m.d_loss), avg(&m.g_loss), avg(&m.d_acc));
    let points = |v: &[f64]| -> Vec<(f64, f64)> {
        m.step
            .iter()
            .zip(v)
            .filter(|(_, y)| y.is_finite())
            .map(|(&x, &y)| (x, y))
            .collect()
    };
    let label_font = (FONT, 16).into_font();
    let caption_font = (FONT, 22).into_font();
    let window_note = if window == 1 {
        "no moving average".to_string()
    } else {
        format!("moving average of {window} log rows")
    };

    // Losses.
    let y_max = loss_axis_max(&m.d_loss, &m.g_loss, &d_avg, &g_avg);
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("Losses ({window_note})"), caption_font.clone())
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("binary cross-entropy")
        .label_style(label_font.clone())
        .axis_desc_style(label_font.clone())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, raw, smooth, color) in [
        ("D loss", &m.d_loss, &d_avg, D_COLOR),
        ("G loss", &m.g_loss, &g_avg, G_COLOR),
    ] {
        chart
            .draw_series(LineSeries::new(points(raw), color.mix(0.25)))
            .map_err(|e| err(&e))?
            .label(format!("{name}, each log row"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.mix(0.25)));
        chart
            .draw_series(LineSeries::new(points(smooth), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{name}, moving average"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(label_font.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // D's accuracy.
    let mut chart = ChartBuilder::on(&bottom)
        .caption("D accuracy (real and fake batches)", caption_font)
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), 0.0..1.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("accuracy")
        .label_style(label_font.clone())
        .axis_desc_style(label_font.clone())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(points(&m.d_acc), ACC_COLOR.mix(0.25)))
        .map_err(|e| err(&e))?
        .label("D accuracy, each log row")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], ACC_COLOR.mix(0.25)));
    chart
        .draw_series(LineSeries::new(points(&acc_avg), ACC_COLOR.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("D accuracy, moving average")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], ACC_COLOR.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(x_range.start, 0.5), (x_range.end, 0.5)],
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("50%: D cannot tell real from fake")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.mix(0.6)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(label_font)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A little above the 99th percentile of both raw losses, or the highest average if higher.
fn loss_axis_max(d: &[f64], g: &[f64], d_avg: &[f64], g_avg: &[f64]) -> f64 {
    let mut raw: Vec<f64> = d
        .iter()
        .chain(g)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    raw.sort_by(f64::total_cmp);
    let p99 = raw
        .get(((raw.len() as f64 * 0.99) as usize).min(raw.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0);
    let avg_max = d_avg
        .iter()
        .chain(g_avg)
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let top = p99.max(avg_max) * 1.08;
    if top > 0.0 { top } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::default_window;

    #[test]
    fn default_window_smooths_short_runs_without_swallowing_them() {
        assert_eq!(default_window(10_000), 200);
        assert_eq!(default_window(40), 5);
        assert_eq!(default_window(10), 2);
        assert_eq!(default_window(3), 1);
        assert_eq!(default_window(0), 1);
    }
}
