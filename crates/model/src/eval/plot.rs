//! PNG figures (plotters): attention heat maps, the locality figure (mean attention distance
//! per layer, one line per model) and in-context-learning curves (accuracy vs shots).
//!
//! Text needs a TrueType font: the first of `$PSF_FONT` and a few standard DejaVu / Liberation
//! paths that exists is loaded once. Heat maps carry no text and need none; the line charts
//! return [`Error::Plot`] when no font is found.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::eval::attention::LayerMap;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font for plotters' "sans-serif" family once; whether one was found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let env = std::env::var("PSF_FONT").ok();
        let candidates = env.iter().map(String::as_str).chain(FONT_PATHS);
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: PathBuf::from(path),
        msg: e.to_string(),
    }
}

/// A white-to-dark-blue colour for a weight in `[0, 1]` (values are clamped; the square root
/// makes small weights visible).
fn shade(w: f32) -> RGBColor {
    let v = w.clamp(0.0, 1.0).sqrt();
    let lerp = |a: f32, b: f32| (a + (b - a) * v).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

/// One layer's heads side by side, `cell` pixels per weight, 4-pixel gaps; query rows top to
/// bottom, keys left to right.
pub fn heatmap_png(map: &LayerMap, cell: u32, path: &Path) -> Result<()> {
    let heads = map.weights.len() as u32;
    let t = map.weights.first().map_or(0, Vec::len) as u32;
    if heads == 0 || t == 0 || cell == 0 {
        return Err(plot_err(path, "empty attention map"));
    }
    let gap = 4;
    let (w, h) = (heads * t * cell + (heads - 1) * gap, t * cell);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    for (hd, rows) in map.weights.iter().enumerate() {
        let x0 = hd as u32 * (t * cell + gap);
        for (i, row) in rows.iter().enumerate() {
            for (j, &wt) in row.iter().enumerate() {
                let (x, y) = ((x0 + j as u32 * cell) as i32, (i as u32 * cell) as i32);
                let rect = [(x, y), (x + cell as i32 - 1, y + cell as i32 - 1)];
                root.draw(&Rectangle::new(rect, shade(wt).filled()))
                    .map_err(|e| plot_err(path, e))?;
            }
        }
    }
    root.present().map_err(|e| plot_err(path, e))
}

/// A named series of `(x, y)` points for a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart with one line per series, axis labels and a legend in a panel of its own
/// to the right (it never covers a line; the image grows taller for a long legend). The y
/// axis spans every point, and 0 too when `from_zero` (accuracies; not log-probabilities).
/// Integer x values get integer ticks only.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    from_zero: bool,
    series: &[Series],
) -> Result<()> {
    if !font_ready() {
        return Err(plot_err(path, "no TrueType font found; set PSF_FONT"));
    }
    // Bounds of every point, and whether every x is an integer, in one pass.
    let (lo, hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut x0, mut x1, mut y0, mut y1) = (lo, hi, lo, hi);
    let mut whole_x = true;
    for &(x, y) in series.iter().flat_map(|s| &s.points) {
        (x0, x1) = (x0.min(x), x1.max(x));
        (y0, y1) = (y0.min(y), y1.max(y));
        whole_x &= x.fract() == 0.0;
    }
    if !x0.is_finite() || !y0.is_finite() {
        return Err(plot_err(path, "no points"));
    }
    if from_zero {
        (y0, y1) = (y0.min(0.0), y1.max(0.0));
    }
    let pad = ((y1 - y0) * 0.06)
        .max(y1.abs().max(y0.abs()) * 1e-3)
        .max(1e-9);
    let (y0, y1) = (
        y0 - if from_zero && y0 == 0.0 { 0.0 } else { pad },
        y1 + pad,
    );
    let integral = whole_x && x1 - x0 <= 32.0;
    let xpad = if x1 > x0 { (x1 - x0) * 0.03 } else { 0.5 };
    let (x0, x1) = (x0 - xpad, x1 + xpad);

    let longest = series.iter().map(|s| s.label.chars().count()).max();
    let legend_w = (longest.unwrap_or(0) as u32 * 6 + 48).min(480);
    // The legend lists one series per 20 px below a 48 px header; the image grows to hold it.
    let height = (72 + 20 * series.len() as u32).max(480);
    let root = BitMapBackend::new(path, (720 + legend_w, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (plot_area, legend_area) = root.split_horizontally(720);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    let integer_tick = |x: &f64| {
        let r = x.round();
        if (x - r).abs() < 1e-9 {
            format!("{r:.0}")
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label).y_desc(y_label);
    if integral {
        mesh.x_labels((x1 - x0).round() as usize + 2)
            .x_label_formatter(&integer_tick);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    for (k, s) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?;
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
        let y = 48 + 20 * k as i32;
        legend_area
            .draw(&PathElement::new(
                vec![(6, y), (30, y)],
                color.stroke_width(2),
            ))
            .map_err(|e| plot_err(path, e))?;
        legend_area
            .draw(&Text::new(s.label.clone(), (36, y - 7), ("sans-serif", 13)))
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn line_chart_puts_its_legend_in_a_panel_beside_the_plot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let series = |label: &str, pts: &[(f64, f64)]| Series {
            label: label.into(),
            points: pts.to_vec(),
        };
        let log_probs = [
            series("a", &[(1.0, -9.7), (2.0, -10.1), (16.0, -10.2)]),
            series("b-long-label", &[(1.0, -9.9), (4.0, -10.3)]),
        ];
        line_chart(&path, "t", "pairs", "log-prob", false, &log_probs).unwrap();
        assert_eq!(png_size(&path), (720 + 12 * 6 + 48, 480));
        let many: Vec<Series> = (0..30)
            .map(|k| series(&format!("run{k:02}"), &[(0.0, k as f64), (1.0, 1.0)]))
            .collect();
        line_chart(&path, "t", "layer", "tokens", false, &many).unwrap();
        assert_eq!(png_size(&path), (720 + 5 * 6 + 48, 72 + 20 * 30));
        let fractional = [series("x", &[(0.5, 0.2), (1.25, 0.9)])];
        line_chart(&path, "t", "x", "acc", true, &fractional).unwrap();
        assert!(line_chart(&path, "t", "x", "y", true, &[series("e", &[])]).is_err());
    }

    #[test]
    fn heatmap_writes_a_png_of_the_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let map = LayerMap {
            layer: 0,
            weights: vec![vec![vec![1.0, 0.0], vec![0.5, 0.5]]; 3],
        };
        heatmap_png(&map, 5, &path).unwrap();
        assert_eq!(png_size(&path).0, 3 * 2 * 5 + 2 * 4);
        assert!(
            heatmap_png(
                &LayerMap {
                    layer: 0,
                    weights: vec![]
                },
                5,
                &path
            )
            .is_err()
        );
    }
}
