//! The report as a PNG bar chart (plotters): wall seconds per component, then seconds per
//! primitive class. Text needs a TrueType font: `$PSF_FONT` or a standard DejaVu/Liberation
//! path; without one the chart is an error, never a silent blank.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Component, PrimitiveClass, Report};
use crate::{InferError, Result};

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let env = std::env::var("PSF_FONT").ok();
        for path in env.iter().map(String::as_str).chain(FONT_PATHS) {
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

/// Rows of `(label, seconds)` drawn as bars.
fn bars(report: &Report) -> Vec<(String, f64, bool)> {
    let mut rows: Vec<(String, f64, bool)> = Component::ALL
        .iter()
        .map(|&c| (c.label().to_string(), report.wall(c), true))
        .collect();
    rows.extend(PrimitiveClass::ALL.iter().map(|&p| {
        let s = report
            .primitives
            .iter()
            .find(|x| x.class == Some(p))
            .map_or(0.0, |x| x.seconds);
        (format!("[{}]", p.label()), s, false)
    }));
    rows
}

/// Draws `report` to `path` (PNG).
///
/// # Errors
/// No font found, or a drawing/encoding error.
pub fn write_png(report: &Report, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let err = |msg: String| InferError::Output {
        path: path.display().to_string(),
        msg,
    };
    if !font_ready() {
        return Err(err("no TrueType font found (set PSF_FONT)".into()));
    }
    let rows = bars(report);
    let (w, row_h, left, top) = (1000u32, 28u32, 190i32, 50i32);
    let h = top as u32 + row_h * rows.len() as u32 + 20;
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let title = format!("{} — total {:.2} s", report.title, report.total_s);
    root.draw(&Text::new(title, (10, 12), ("sans-serif", 16).into_font()))
        .map_err(|e| err(e.to_string()))?;
    let max = rows.iter().map(|r| r.1).fold(1e-9f64, f64::max);
    let span = f64::from(w) - f64::from(left) - 120.0;
    for (i, (label, s, component)) in rows.iter().enumerate() {
        let y = top + (i as u32 * row_h) as i32;
        let len = (s / max * span).round() as i32;
        let colour = if *component {
            RGBColor(31, 119, 180)
        } else {
            RGBColor(255, 127, 14)
        };
        root.draw(&Rectangle::new(
            [(left, y), (left + len.max(1), y + row_h as i32 - 6)],
            colour.filled(),
        ))
        .map_err(|e| err(e.to_string()))?;
        let font = ("sans-serif", 14).into_font();
        root.draw(&Text::new(label.clone(), (8, y + 4), font.clone()))
            .map_err(|e| err(e.to_string()))?;
        root.draw(&Text::new(
            format!("{s:.3} s"),
            (left + len + 6, y + 4),
            font,
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
