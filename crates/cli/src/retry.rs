//! Client-side backpressure: a request answered 429 or 503 is sent again
//! after the node's `Retry-After`, as a well-behaved client does.

use std::time::Duration;

/// Attempts before the last answer is returned as it is.
const ATTEMPTS: u32 = 30;

/// Sends the request `build` makes until it is not refused for load (429,
/// 503), waiting the answer's `Retry-After` (default 1 s) in between.
/// Returns the answer and how many times the node pushed back.
pub async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
) -> reqwest::Result<(reqwest::Response, u32)> {
    let mut pushed_back = 0;
    loop {
        let response = build().send().await?;
        let status = response.status().as_u16();
        if !matches!(status, 429 | 503) || pushed_back + 1 >= ATTEMPTS {
            return Ok((response, pushed_back));
        }
        pushed_back += 1;
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait.min(30))).await;
    }
}
