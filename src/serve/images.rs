//! The image endpoints: faces from the DCGAN and photos restyled with the 26 built-in styles,
//! both answered with a PNG.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::hub::JobStream;
use crate::engine::Event;
use crate::features::faces::render::compose_grid;
use crate::features::faces::{FaceImage, FaceSpec, PSI_RANGE};
use crate::features::faces::{FacesEvent, RenderRequest};
use crate::features::style::StyleEvent;
use crate::features::style::{ImageSource, StyleChoice, StylePass, StyleRequest};
use crate::models::stylenet::StyleMix;
use crate::models::stylenet::colour::Finish;
use crate::models::stylenet::image::{ImageLimits, decode_with_limits, fit_within};

/// Largest face grid side.
const MAX_GRID: i64 = 8;
/// Face sizes: the model's 64 px up to 512 px (upscaled).
const FACE_SIZES: std::ops::RangeInclusive<i64> = 64..=512;

/// The body of `POST /v1/images/faces`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacesBody {
    /// Seed of the face (or of a grid's first face); random when absent.
    seed: Option<u64>,
    /// A latent of 100 values instead of a seed.
    latent: Option<Vec<f32>>,
    /// Grid side (1–8): N×N consecutive seeds.
    grid: Option<i64>,
    /// Truncation ψ, 0–1.5 (default 1).
    truncation: Option<f32>,
    /// Pixels per face, 64–512 (default 256).
    size: Option<i64>,
    /// Offsets along the principal directions (up to 8).
    offsets: Vec<f32>,
}

/// `POST /v1/images/faces`: a PNG of one face or a grid.
pub async fn faces(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let model = crate::features::faces::default_model();
    if !model.is_file() {
        return Err(missing_model(&model, "faces"));
    }
    let (slot, body) = super::admit(&state, body, state.limits.max_body_bytes).await?;
    let b: FacesBody = if body.is_empty() {
        FacesBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body is not valid JSON for this endpoint: {e}"))
        })?
    };
    let psi = b.truncation.unwrap_or(1.0);
    if !(psi.is_finite() && PSI_RANGE.contains(&psi)) {
        return Err(ApiError::bad_request(format!(
            "'truncation' must be between 0 and 1.5 (got {psi})"
        )));
    }
    let size = b.size.unwrap_or(256);
    if !FACE_SIZES.contains(&size) {
        return Err(ApiError::bad_request(format!(
            "'size' must be between 64 and 512 pixels (got {size})"
        )));
    }
    let grid = b.grid.unwrap_or(1);
    if !(1..=MAX_GRID).contains(&grid) {
        return Err(ApiError::bad_request(format!(
            "'grid' must be between 1 and {MAX_GRID} (got {grid})"
        )));
    }
    let grid = grid as usize;
    let with_offsets = |mut f: FaceSpec| {
        f.offsets = b.offsets.clone();
        f
    };
    let faces: Vec<FaceSpec> = match (&b.latent, b.seed) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give 'seed' or 'latent', not both"));
        }
        (Some(_), _) if grid > 1 => {
            return Err(ApiError::bad_request("'grid' takes seeds, not a latent"));
        }
        (Some(z), None) => vec![with_offsets(
            FaceSpec::from_latent(z.clone(), psi)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        )],
        (None, seed) => {
            let first = seed.unwrap_or_else(|| rand::random::<u32>() as u64);
            let n = (grid * grid) as u64;
            let last = first
                .checked_add(n - 1)
                .ok_or_else(|| ApiError::bad_request("'seed' is too large for that grid"))?;
            (first..=last)
                .map(|s| with_offsets(FaceSpec::from_seed(s, psi)))
                .collect()
        }
    };
    let n = faces.len();
    let request = RenderRequest {
        model,
        faces,
        size: size as u32,
    };
    let mut job = slot.submit(|engine| engine.faces_render(request))?;
    let mut images: Vec<Option<FaceImage>> = vec![None; n];
    wait(&mut job, |event| {
        if let Event::Faces {
            event: FacesEvent::Sample { index, image },
            ..
        } = event
            && let Some(slot) = images.get_mut(index)
        {
            *slot = Some(image);
        }
    })
    .await?;
    let images: Vec<FaceImage> = images.into_iter().flatten().collect();
    if images.len() != n {
        return Err(internal("some faces never arrived"));
    }
    let png = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let grid = compose_grid(&images, grid).map_err(|e| internal(&e.to_string()))?;
        encode_png(image::DynamicImage::ImageRgba8(grid))
    })
    .await
    .map_err(|e| internal(&e.to_string()))??;
    Ok(png_response(png))
}

/// The query of `POST /v1/images/style`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StyleQuery {
    /// One of the 26 styles (0–25).
    style: Option<usize>,
    /// A blend such as `3:0.5,11:0.5`.
    mix: Option<String>,
    /// 0 = the original, 1 = fully stylised (default 1).
    strength: Option<f32>,
    /// Keep the photo's colours.
    preserve_color: Option<bool>,
    /// Longest side of the result (default 1024; never enlarges).
    max_size: Option<u32>,
}

/// `POST /v1/images/style?style=19`: the request body is the image (PNG, JPEG, GIF, WebP);
/// the answer is the restyled PNG.
pub async fn style(
    State(state): State<AppState>,
    query: Result<Query<StyleQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let mix = match (q.style, &q.mix) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give 'style' or 'mix', not both")),
        (Some(i), None) => StyleMix::single(i),
        (None, Some(m)) => StyleMix::parse(m),
        (None, None) => {
            return Err(ApiError::bad_request(
                "choose a style: ?style=0..25 or ?mix=3:0.5,11:0.5",
            ));
        }
    }
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let strength = q.strength.unwrap_or(1.0);
    if !(strength.is_finite() && (0.0..=1.0).contains(&strength)) {
        return Err(ApiError::bad_request(format!(
            "'strength' must be between 0 and 1 (got {strength})"
        )));
    }
    let max_side = state.limits.max_output_side;
    let max_size = q.max_size.unwrap_or(1024.min(max_side));
    if !(16..=max_side).contains(&max_size) {
        return Err(ApiError::bad_request(format!(
            "'max_size' must be between 16 and {max_side} (got {max_size})"
        )));
    }
    let multistyle = crate::paths::default_model(crate::models::stylenet::MULTISTYLE_FILE);
    if !multistyle.is_file() {
        return Err(missing_model(&multistyle, "style"));
    }
    // The slot first: without it nothing of the upload is kept, let alone decoded.
    let (slot, body) = super::admit(&state, body, state.limits.max_image_bytes).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "send the image as the request body (Content-Type: image/png or image/jpeg)",
        ));
    }
    let max_pixels = state.limits.max_image_pixels;
    // One decode at a time (up to 1 GiB each); the header's size is checked before any pixel
    // is decoded, and the picture is shrunk to the output size at once, so a queued job
    // holds at most max_size² pixels rather than the upload's 40 megapixels.
    let decoding = state
        .decoding
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| internal(&e.to_string()))?;
    let content = tokio::task::spawn_blocking(move || {
        decode_with_limits(
            &body,
            Path::new("the uploaded image"),
            ImageLimits {
                max_side: 16384,
                max_pixels,
            },
        )
        .map(|loaded| fit_within(&loaded.image, max_size).unwrap_or(loaded.image))
    })
    .await
    .map_err(|e| internal(&e.to_string()))?
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    drop(decoding);
    let mut request = StyleRequest::new(
        ImageSource::Pixels(Arc::new(content)),
        StyleChoice::Preset(mix),
    );
    request.max_size = Some(max_size);
    request.finish = Finish {
        strength,
        preserve_colour: q.preserve_color.unwrap_or(false),
    };
    let mut job = slot.submit(|engine| engine.style(request, StylePass::Full))?;
    let mut output = None;
    wait(&mut job, |event| {
        if let Event::Style {
            event: StyleEvent::Output(out),
            ..
        } = event
        {
            output = Some(out);
        }
    })
    .await?;
    let out = output.ok_or_else(|| internal("the style job finished without an image"))?;
    let png = tokio::task::spawn_blocking(move || {
        encode_png(image::DynamicImage::ImageRgb8((*out.image).clone()))
    })
    .await
    .map_err(|e| internal(&e.to_string()))??;
    Ok(png_response(png))
}

/// Runs a job to its end, handing every event to `on_event`.
async fn wait(job: &mut JobStream, mut on_event: impl FnMut(Event)) -> Result<(), ApiError> {
    while let Some(event) = job.next().await {
        match event {
            Event::Finished { .. } => return Ok(()),
            Event::Failed { error, .. } => return Err(error.into()),
            Event::Cancelled { .. } => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "the job was cancelled (the server is shutting down)",
                ));
            }
            other => on_event(other),
        }
    }
    Err(internal("the engine stopped answering"))
}

fn encode_png(img: image::DynamicImage) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| internal(&format!("cannot encode the PNG: {e}")))?;
    Ok(bytes)
}

fn png_response(png: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], png).into_response()
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

fn missing_model(path: &Path, which: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        // The file name only: the server's folders are none of the client's business.
        format!(
            "the model {} is missing on the server: run {} {which} there",
            path.file_name().unwrap_or_default().to_string_lossy(),
            crate::paths::FETCH_COMMAND
        ),
    )
}
