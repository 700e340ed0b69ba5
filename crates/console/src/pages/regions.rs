//! Regions (docs/failover.md): the replication point of every link into a Region of this node
//! (per primary Region: replicas, when its newest state was applied, how many secrets lag), the
//! Region's failovers, and "Fail over from <Region>", which runs `Coffer.FailoverRegion` as
//! the signed-in user (recorded in the audit log like the API call) and shows its report.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::failover::{self, FailoverInput, LinkPoint, Operation as Coffer, Report};

use crate::form::{Form, url};
use crate::view::time;
use crate::{Console, Layout, render};

#[derive(Template)]
#[template(path = "regions.html")]
struct RegionsPage {
    layout: Layout,
    region: String,
    links: Vec<LinkPoint>,
    failovers: Vec<Report>,
    error: Option<String>,
}

impl RegionsPage {
    fn failover_url(&self, from: &str) -> String {
        url(
            "/console/regions/failover",
            &[("region", &self.region), ("from", from)],
        )
    }

    fn seconds(&self, link: &LinkPoint) -> String {
        link.seconds_since_last_applied
            .map_or_else(|| "—".to_string(), |s| format!("{s:.1} s"))
    }

    fn applied(&self, link: &LinkPoint) -> String {
        time(link.last_applied_date)
    }

    fn started(&self, f: &Report) -> String {
        time(Some(f.started_date))
    }
}

pub async fn page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q
        .optional("region")
        .unwrap_or_else(|| console.default_region());
    let region = ctx.region(&region_name)?;
    let (links, failovers, error) = match (
        failover::replication_points(&region).await,
        failover::saved(&region).await,
    ) {
        (Ok(links), Ok(saved)) => (
            links,
            saved.iter().rev().map(|f| f.report()).collect(),
            None,
        ),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Vec::new(), Some(e.message)),
    };
    let page = RegionsPage {
        layout: ctx.layout(&format!("Regions: {region_name}"), &region_name),
        region: region_name,
        links,
        failovers,
        error,
    };
    Ok(render(StatusCode::OK, &page))
}

/// "Fail over from <Region>": confirmation.
pub async fn failover_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let from = q.text("from");
    ctx.region(&region_name)?;
    let page = super::replication::ConfirmPage {
        layout: ctx.layout(&format!("Fail over from {from}"), &region_name),
        heading: format!("Fail {region_name} over from {from}?"),
        text: format!(
            "Every replica in {region_name} whose primary is in {from} becomes a standalone secret that you can change, as Promote does for one; {from} stops replicating to them. This works while {from} is unreachable. The report lists, per secret, the version it holds and whether {from} is known to have had a newer one (writes that may be lost)."
        ),
        action: "/console/regions/failover".into(),
        button: format!("Fail over from {from}"),
        danger: true,
        fields: vec![("region", region_name.clone()), ("from", from)],
        back_url: url("/console/regions", &[("region", &region_name)]),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "failover_report.html")]
struct ReportPage {
    layout: Layout,
    region: String,
    report: Report,
}

impl ReportPage {
    fn applied(&self, s: &coffer_core::failover::ReportEntry) -> String {
        time(s.applied_date)
    }

    fn back_url(&self) -> String {
        url("/console/regions", &[("region", &self.region)])
    }
}

pub async fn failover_submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let from = form.text("from");
    let region = ctx.region(&region_name)?;
    let result = ctx
        .call(
            &region,
            Coffer::FailoverRegion,
            failover::failover_region,
            FailoverInput {
                from_region: Some(from),
            },
        )
        .await;
    match result {
        Ok(report) => {
            let page = ReportPage {
                layout: ctx.layout(
                    &format!("Failover from {}", report.from_region),
                    &region_name,
                ),
                region: region_name,
                report,
            };
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            ctx.flash(true, e.message);
            Ok(crate::see_other(&url(
                "/console/regions",
                &[("region", &region_name)],
            )))
        }
    }
}
