//! Feature extraction: minimum-eigenvalue corner response on the full image and on a
//! half-size copy (adaptive extraction levels), grid-stratified selection (per-cell quality
//! threshold, 3x3 local maxima, round robin over cells) and a minimum-distance occupancy
//! mask that also holds the points of existing tracks.

use opencv::core::{Mat, Size, BORDER_DEFAULT};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CvResult, GrayImage, TrackingError};

/// Options of the extraction (processing-resolution units unless noted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureOptions {
    /// Most features per frame (tracked plus new).
    pub max_features: usize,
    /// 1: full resolution only; 2: also the half-size response if features are missing.
    pub adaptive_extraction_levels: u32,
    /// Grid cell size as a fraction of the frame dimensions.
    pub adaptive_features_block_size: f32,
    /// A candidate needs this fraction of its cell's best response.
    pub local_quality_level: f32,
    /// ... and at least this absolute response.
    pub adaptive_lowest_quality_level: f32,
    /// Minimum distance between features in nominal px (divided by the square root of the
    /// downsample factor at the processing resolution).
    pub min_feature_distance: f32,
    /// Features must be this far from the border.
    pub border: f32,
    /// Stored corner response = min(1, response * this).
    pub corner_response_scale: f32,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            max_features: 500,
            adaptive_extraction_levels: 2,
            adaptive_features_block_size: 0.26,
            local_quality_level: 0.01,
            adaptive_lowest_quality_level: 2e-4,
            min_feature_distance: 7.0,
            border: 2.0,
            corner_response_scale: 1500.0,
        }
    }
}

/// An extracted corner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Corner {
    /// Position (processing px).
    pub x: f32,
    /// Position (processing px).
    pub y: f32,
    /// The stored (scaled, clamped) corner response.
    pub response: f32,
}

/// Minimum-distance mask: cells of half the minimum distance; a feature marks the 5x5 cells
/// around its own.
#[derive(Clone, Debug)]
pub struct OccupancyMask {
    cell: f32,
    cols: usize,
    rows: usize,
    bits: Vec<bool>,
}

impl OccupancyMask {
    /// A clear mask over a `width` x `height` image for features `min_distance` apart.
    pub fn new(width: usize, height: usize, min_distance: f32) -> OccupancyMask {
        let cell = (min_distance / 2.0).max(0.5);
        let cols = (width as f32 / cell).ceil() as usize + 1;
        let rows = (height as f32 / cell).ceil() as usize + 1;
        OccupancyMask {
            cell,
            cols,
            rows,
            bits: vec![false; cols * rows],
        }
    }

    fn cell_of(&self, x: f32, y: f32) -> Option<(usize, usize)> {
        if !(x.is_finite() && y.is_finite()) || x < 0.0 || y < 0.0 {
            return None;
        }
        let (cx, cy) = ((x / self.cell) as usize, (y / self.cell) as usize);
        (cx < self.cols && cy < self.rows).then_some((cx, cy))
    }

    /// Whether a feature may go at (x, y).
    pub fn is_free(&self, x: f32, y: f32) -> bool {
        self.cell_of(x, y)
            .is_some_and(|(cx, cy)| !self.bits[cy * self.cols + cx])
    }

    /// Marks the neighbourhood of a feature at (x, y).
    pub fn mark(&mut self, x: f32, y: f32) {
        let Some((cx, cy)) = self.cell_of(x, y) else {
            return;
        };
        for yy in cy.saturating_sub(2)..(cy + 3).min(self.rows) {
            for xx in cx.saturating_sub(2)..(cx + 3).min(self.cols) {
                self.bits[yy * self.cols + xx] = true;
            }
        }
    }
}

/// Minimum-eigenvalue response (block 3, Sobel 3) of `img`, row major.
pub fn min_eig_response(img: &GrayImage) -> Result<Vec<f32>, TrackingError> {
    let src = Mat::new_rows_cols_with_data(img.height() as i32, img.width() as i32, img.data())
        .cv("wrap image")?;
    let mut dst = Mat::default();
    imgproc::corner_min_eigen_val(&src, &mut dst, 3, 3, BORDER_DEFAULT).cv("cornerMinEigenVal")?;
    Ok(dst.data_typed::<f32>().cv("read response")?.to_vec())
}

/// `img` halved with a Gaussian pyramid step.
pub fn pyr_down(img: &GrayImage) -> Result<GrayImage, TrackingError> {
    let src = Mat::new_rows_cols_with_data(img.height() as i32, img.width() as i32, img.data())
        .cv("wrap image")?;
    let mut dst = Mat::default();
    imgproc::pyr_down(&src, &mut dst, Size::default(), BORDER_DEFAULT).cv("pyrDown")?;
    let (w, h) = (dst.cols() as usize, dst.rows() as usize);
    GrayImage::new(w, h, dst.data_bytes().cv("read pyrDown")?.to_vec())
}

/// Candidates of one response map (`rw` x `rh`, positions scaled by `scale` into the
/// image), grouped by grid cell and sorted by response, strongest first.
fn grid_candidates(
    resp: &[f32],
    rw: usize,
    rh: usize,
    scale: f32,
    width: usize,
    height: usize,
    options: &FeatureOptions,
) -> Vec<Vec<(f32, u32)>> {
    let cell_w = (options.adaptive_features_block_size * width as f32)
        .ceil()
        .max(1.0);
    let cell_h = (options.adaptive_features_block_size * height as f32)
        .ceil()
        .max(1.0);
    let gx = (width as f32 / cell_w).ceil() as usize;
    let gy = (height as f32 / cell_h).ceil() as usize;
    // The cell column of every x and the first cell of every row's y, computed once.
    let col: Vec<usize> = (0..rw)
        .map(|x| ((x as f32 * scale / cell_w) as usize).min(gx - 1))
        .collect();
    let row: Vec<usize> = (0..rh)
        .map(|y| ((y as f32 * scale / cell_h) as usize).min(gy - 1) * gx)
        .collect();
    let mut cell_max = vec![0.0f32; gx * gy];
    for (line, &r) in resp.chunks_exact(rw.max(1)).zip(&row) {
        for (&v, &cx) in line.iter().zip(&col) {
            let m = &mut cell_max[r + cx];
            *m = m.max(v);
        }
    }
    let cell_thresh: Vec<f32> = cell_max
        .iter()
        .map(|&m| (options.local_quality_level * m).max(options.adaptive_lowest_quality_level))
        .collect();
    let border = (options.border / scale).ceil() as usize;
    let mut cells: Vec<Vec<(f32, u32)>> = vec![Vec::new(); gx * gy];
    if rw < 3 || rh < 3 {
        return cells;
    }
    for y in border.max(1)
        ..(rh - 1)
            .saturating_sub(border.saturating_sub(1))
            .min(rh - 1)
    {
        for x in border.max(1)
            ..(rw - 1)
                .saturating_sub(border.saturating_sub(1))
                .min(rw - 1)
        {
            let v = resp[y * rw + x];
            let c = row[y] + col[x];
            if v <= cell_thresh[c] {
                continue;
            }
            let up = &resp[(y - 1) * rw + x - 1..(y - 1) * rw + x + 2];
            let mid = &resp[y * rw + x - 1..y * rw + x + 2];
            let down = &resp[(y + 1) * rw + x - 1..(y + 1) * rw + x + 2];
            if up.iter().chain(mid).chain(down).all(|&o| o <= v) {
                cells[c].push((v, (y * rw + x) as u32));
            }
        }
    }
    for cell in &mut cells {
        cell.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    }
    cells
}

/// Picks up to `wanted` corners round robin over the cells, skipping occupied places.
fn pick(
    (cells, rw, scale): (&[Vec<(f32, u32)>], usize, f32),
    (width, height): (usize, usize),
    wanted: usize,
    mask: &mut OccupancyMask,
    options: &FeatureOptions,
    out: &mut Vec<Corner>,
) {
    let mut cursor = vec![0usize; cells.len()];
    let (maxx, maxy) = (
        width as f32 - 1.0 - options.border,
        height as f32 - 1.0 - options.border,
    );
    let start = out.len();
    loop {
        let mut progressed = false;
        for (c, cell) in cells.iter().enumerate() {
            if out.len() - start >= wanted {
                return;
            }
            while cursor[c] < cell.len() {
                let (v, idx) = cell[cursor[c]];
                cursor[c] += 1;
                let x = (idx as usize % rw) as f32 * scale;
                let y = (idx as usize / rw) as f32 * scale;
                if x < options.border || y < options.border || x > maxx || y > maxy {
                    continue;
                }
                if !mask.is_free(x, y) {
                    continue;
                }
                mask.mark(x, y);
                out.push(Corner {
                    x,
                    y,
                    response: (v * options.corner_response_scale).min(1.0),
                });
                progressed = true;
                break;
            }
        }
        if !progressed {
            return;
        }
    }
}

/// Extracts up to `wanted` new corners from `img` where `mask` is free (the mask is
/// updated). The full-resolution response is used first; with two extraction levels the
/// half-size response fills what is still missing.
pub fn extract_corners(
    img: &GrayImage,
    mask: &mut OccupancyMask,
    wanted: usize,
    options: &FeatureOptions,
) -> Result<Vec<Corner>, TrackingError> {
    let (w, h) = (img.width(), img.height());
    let mut out = Vec::new();
    if wanted == 0 || w < 8 || h < 8 {
        return Ok(out);
    }
    let resp = min_eig_response(img)?;
    let cells = grid_candidates(&resp, w, h, 1.0, w, h, options);
    pick((&cells, w, 1.0), (w, h), wanted, mask, options, &mut out);
    if out.len() < wanted && options.adaptive_extraction_levels >= 2 && w >= 16 && h >= 16 {
        let half = pyr_down(img)?;
        let resp = min_eig_response(&half)?;
        let cells = grid_candidates(&resp, half.width(), half.height(), 2.0, w, h, options);
        let missing = wanted - out.len();
        let half_cells = (&cells[..], half.width(), 2.0);
        pick(half_cells, (w, h), missing, mask, options, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkerboard(w: usize, h: usize, square: usize) -> GrayImage {
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if ((x / square) + (y / square)) % 2 == 0 {
                    30
                } else {
                    220
                }
            })
            .collect();
        GrayImage::new(w, h, data).unwrap()
    }

    #[test]
    fn corners_respect_spacing_border_and_budget() {
        let img = checkerboard(160, 120, 10);
        let o = FeatureOptions::default();
        let min_d = 5.0;
        let mut mask = OccupancyMask::new(160, 120, min_d);
        let corners = extract_corners(&img, &mut mask, 60, &o).unwrap();
        assert!(
            corners.len() > 40 && corners.len() <= 60,
            "{}",
            corners.len()
        );
        for (i, a) in corners.iter().enumerate() {
            assert!(a.x >= 2.0 && a.y >= 2.0 && a.x <= 157.0 && a.y <= 117.0);
            for b in &corners[i + 1..] {
                assert!((a.x - b.x).hypot(a.y - b.y) >= 2.5, "{a:?} {b:?}");
            }
        }
        // Corners of a checkerboard lie at the square corners (within a pixel).
        let near = corners
            .iter()
            .filter(|c| {
                let dx = (c.x + 0.5) % 10.0;
                let dy = (c.y + 0.5) % 10.0;
                dx.min(10.0 - dx) <= 1.5 && dy.min(10.0 - dy) <= 1.5
            })
            .count();
        assert!(near * 10 >= corners.len() * 9, "{near}/{}", corners.len());
    }

    #[test]
    fn flat_image_has_no_corners_and_tiny_images_are_fine() {
        let o = FeatureOptions::default();
        let flat = GrayImage::new(64, 48, vec![128; 64 * 48]).unwrap();
        let mut mask = OccupancyMask::new(64, 48, 5.0);
        assert!(extract_corners(&flat, &mut mask, 100, &o)
            .unwrap()
            .is_empty());
        let tiny = GrayImage::new(3, 3, vec![0, 255, 0, 255, 0, 255, 0, 255, 0]).unwrap();
        let mut mask = OccupancyMask::new(3, 3, 5.0);
        assert!(extract_corners(&tiny, &mut mask, 100, &o)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn mask_marks_neighbourhood() {
        let mut m = OccupancyMask::new(100, 100, 5.0);
        assert!(m.is_free(50.0, 50.0));
        m.mark(50.0, 50.0);
        assert!(!m.is_free(54.0, 50.0));
        assert!(m.is_free(58.0, 50.0));
        assert!(!m.is_free(-1.0, 3.0) && !m.is_free(f32::NAN, 3.0));
    }
}
