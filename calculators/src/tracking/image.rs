//! A small 8-bit grayscale image type for the tracking algorithms, plus bilinear sampling
//! and warping (used by the synthetic test sequences).

use super::TrackingError;

/// An owned 8-bit grayscale image, rows tightly packed (stride = width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl GrayImage {
    /// An image over `data` (`width * height` bytes, row major).
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<GrayImage, TrackingError> {
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(TrackingError::Image(format!(
                "image size {width}x{height} is empty or too large"
            )));
        }
        if data.len() != width * height {
            return Err(TrackingError::Image(format!(
                "{width}x{height} needs {} bytes, got {}",
                width * height,
                data.len()
            )));
        }
        Ok(GrayImage {
            width,
            height,
            data,
        })
    }

    /// A black image.
    pub fn zeros(width: usize, height: usize) -> Result<GrayImage, TrackingError> {
        GrayImage::new(width, height, vec![0; width * height])
    }

    /// Converts interleaved 8-bit pixels with `channels` channels (1 = gray, 3 = RGB or BGR,
    /// 4 = RGBA or BGRA; `bgr` says which order) to gray with the usual BT.601 weights.
    pub fn from_interleaved(
        width: usize,
        height: usize,
        channels: usize,
        bgr: bool,
        pixels: &[u8],
    ) -> Result<GrayImage, TrackingError> {
        if !matches!(channels, 1 | 3 | 4) {
            return Err(TrackingError::Image(format!(
                "{channels} channels are not supported (1, 3 or 4)"
            )));
        }
        if pixels.len() != width * height * channels {
            return Err(TrackingError::Image(format!(
                "{width}x{height}x{channels} needs {} bytes, got {}",
                width * height * channels,
                pixels.len()
            )));
        }
        if channels == 1 {
            return GrayImage::new(width, height, pixels.to_vec());
        }
        // Fixed-point 0.299 R + 0.587 G + 0.114 B (weights sum to 1 << 14).
        let (wr, wg, wb) = (4899u32, 9617u32, 1868u32);
        let (wfirst, wlast) = if bgr { (wb, wr) } else { (wr, wb) };
        let data = pixels
            .chunks_exact(channels)
            .map(|p| {
                ((u32::from(p[0]) * wfirst + u32::from(p[1]) * wg + u32::from(p[2]) * wlast + 8192)
                    >> 14) as u8
            })
            .collect();
        GrayImage::new(width, height, data)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The pixels, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The pixel at (x, y); `None` outside.
    pub fn get(&self, x: usize, y: usize) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.data[y * self.width + x])
    }

    /// Bilinear sample at (x, y) with the border replicated (pixel centres at integers).
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let maxx = (self.width - 1) as f32;
        let maxy = (self.height - 1) as f32;
        let x = if x.is_finite() {
            x.clamp(0.0, maxx)
        } else {
            0.0
        };
        let y = if y.is_finite() {
            y.clamp(0.0, maxy)
        } else {
            0.0
        };
        let x0 = x.floor() as usize;
        let y0 = y.floor() as usize;
        let x1 = (x0 + 1).min(self.width - 1);
        let y1 = (y0 + 1).min(self.height - 1);
        let fx = x - x0 as f32;
        let fy = y - y0 as f32;
        let p = |xx: usize, yy: usize| f32::from(self.data[yy * self.width + xx]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Renders a `width` x `height` image whose pixel (x, y) takes `self` at `map(x, y)`
    /// (bilinear, border replicated).
    pub fn remap(
        &self,
        width: usize,
        height: usize,
        map: impl Fn(f32, f32) -> (f32, f32),
    ) -> Result<GrayImage, TrackingError> {
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let (sx, sy) = map(x as f32, y as f32);
                data.push(self.sample(sx, sy).round().clamp(0.0, 255.0) as u8);
            }
        }
        GrayImage::new(width, height, data)
    }

    /// Halves the image by averaging 2x2 blocks (odd last rows/columns are dropped).
    pub fn half(&self) -> Result<GrayImage, TrackingError> {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            let r0 = &self.data[2 * y * self.width..];
            let r1 = &self.data[(2 * y + 1) * self.width..];
            for x in 0..w {
                let s = u32::from(r0[2 * x])
                    + u32::from(r0[2 * x + 1])
                    + u32::from(r1[2 * x])
                    + u32::from(r1[2 * x + 1]);
                data.push(((s + 2) / 4) as u8);
            }
        }
        GrayImage::new(w, h, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_sizes() {
        assert!(GrayImage::new(0, 3, vec![]).is_err());
        assert!(GrayImage::new(2, 2, vec![0; 3]).is_err());
        assert!(GrayImage::from_interleaved(1, 1, 2, false, &[0, 0]).is_err());
        let g = GrayImage::from_interleaved(1, 1, 3, false, &[255, 255, 255]).unwrap();
        assert_eq!(g.get(0, 0), Some(255));
        let r = GrayImage::from_interleaved(1, 1, 3, false, &[255, 0, 0]).unwrap();
        let b = GrayImage::from_interleaved(1, 1, 3, true, &[255, 0, 0]).unwrap();
        assert_eq!(r.get(0, 0), Some(76));
        assert_eq!(b.get(0, 0), Some(29));
    }

    #[test]
    fn bilinear_sampling() {
        let g = GrayImage::new(2, 2, vec![0, 100, 100, 200]).unwrap();
        assert_eq!(g.sample(0.5, 0.5), 100.0);
        assert_eq!(g.sample(1.0, 0.0), 100.0);
        assert_eq!(g.sample(-5.0, 9.0), 100.0);
        assert_eq!(g.sample(f32::NAN, 0.0), 0.0);
        let h = g.half().unwrap();
        assert_eq!(h.data(), &[100]);
    }
}
