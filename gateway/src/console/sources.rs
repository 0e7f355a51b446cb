//! Where the console reads the metrics: this process's own (the whole mesh in `agora up`, the
//! edge alone in `agora serve gateway`), read in memory, and every `/metrics` URL of
//! `gateway.console.sources`, scraped over HTTP.

use std::time::Duration;

use agora_platform::metrics::{Metrics, exposition};
use serde::Serialize;

/// The `service_name` of `agora up`'s `target_info`: one process serving every service.
const WHOLE_MESH: &str = "agora";

/// What one source said at the last reading.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// `this process`, or the URL scraped.
    pub source: String,
    /// The process's `service_name` (from its `target_info`), when it answered.
    pub service: Option<String>,
    /// Why it could not be read, when it could not.
    pub error: Option<String>,
}

/// One reading of every source.
#[derive(Debug, Default)]
pub struct Reading {
    /// Every sample of every source that answered.
    pub samples: Vec<exposition::Sample>,
    /// Each source's state, this process first.
    pub sources: Vec<SourceState>,
}

impl Reading {
    /// How many processes that answered serve the service named `name` (`product`, ...): a
    /// process names itself in `target_info`, and `agora up` serves every service.
    pub fn replicas(&self, name: &str) -> u32 {
        let serving = self
            .sources
            .iter()
            .filter_map(|source| source.service.as_deref())
            .filter(|service| *service == name || *service == WHOLE_MESH);
        u32::try_from(serving.count()).unwrap_or(u32::MAX)
    }
}

/// The sources to read.
#[derive(Debug, Clone)]
pub struct Sources {
    urls: Vec<String>,
    client: reqwest::Client,
}

impl Sources {
    /// This process, and `urls`, each given at most `timeout` to answer.
    ///
    /// # Errors
    /// The HTTP client could not be built.
    pub fn new(urls: Vec<String>, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| anyhow::anyhow!("building the console's scraper: {error}"))?;
        Ok(Self { urls, client })
    }

    /// Reads every source at once; one that fails is reported and left out.
    pub async fn read(&self) -> Reading {
        let mut reading = Reading::default();
        let own = Metrics::global()
            .render()
            .map_err(|error| error.to_string())
            .and_then(|text| exposition::parse(&text).map_err(|error| error.to_string()));
        reading.add("this process".into(), own);
        let scraped = futures::future::join_all(self.urls.iter().map(|url| self.scrape(url))).await;
        for (url, result) in self.urls.iter().zip(scraped) {
            reading.add(url.clone(), result);
        }
        reading
    }

    async fn scrape(&self, url: &str) -> Result<Vec<exposition::Sample>, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| error.to_string())?;
        let text = response.text().await.map_err(|error| error.to_string())?;
        exposition::parse(&text).map_err(|error| error.to_string())
    }
}

impl Reading {
    fn add(&mut self, source: String, result: Result<Vec<exposition::Sample>, String>) {
        match result {
            Ok(samples) => {
                let service = samples
                    .iter()
                    .find(|sample| sample.name == "target_info")
                    .and_then(|sample| sample.labels.get("service_name").cloned());
                self.samples.extend(samples);
                self.sources.push(SourceState {
                    source,
                    service,
                    error: None,
                });
            }
            Err(error) => {
                tracing::debug!(%source, %error, "the console could not read a metrics source");
                self.sources.push(SourceState {
                    source,
                    service: None,
                    error: Some(error),
                });
            }
        }
    }
}
