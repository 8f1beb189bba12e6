//! The viewer's layout (a rerun blueprint), sent with every recording: the robot and the
//! text logs on the left; on the right, tabs of time series (states and actions, timing,
//! link, episodes, training) and one "future time" chart per state for the plans.
//! Views only name entity paths: a path with no data shows an empty view.

use rerun::blueprint::{
    Blueprint, ContainerLike, Horizontal, Spatial2DView, Tabs, TextLogView, TimeSeriesView,
    Vertical,
};

use super::draw::Layout;

/// The blueprint for a robot described by `layout`.
pub fn blueprint(layout: &Layout) -> Blueprint {
    let series = |name: &str, origin: &str| -> ContainerLike {
        TimeSeriesView::new(name).with_origin(origin).into()
    };
    let plans: Vec<ContainerLike> = layout
        .state_names
        .iter()
        .map(|name| {
            Spatial2DView::new(format!("plan: {name} vs seconds ahead"))
                .with_origin(format!("/plan/state/{name}"))
                .into()
        })
        .chain(layout.action_names.iter().map(|name| {
            Spatial2DView::new(format!("plan: {name} vs seconds ahead"))
                .with_origin(format!("/plan/action/{name}"))
                .into()
        }))
        .chain([
            series("plan error (actual − predicted)", "/plan/error"),
            TimeSeriesView::new("plan ±2σ coverage")
                .with_contents(["/plan/coverage"])
                .into(),
        ])
        .collect();
    let left = Vertical::new([
        Spatial2DView::new("robot").with_origin("/robot").into(),
        TextLogView::new("mode, faults, log")
            .with_contents(["/mode", "/faults", "/log"])
            .into(),
    ]);
    let right = Tabs::new([
        Vertical::new([series("state", "/state"), series("action", "/action")])
            .with_name("state & action")
            .into(),
        Vertical::new(plans).with_name("plan").into(),
        Vertical::new([
            series("timing", "/timing"),
            series("link", "/link"),
            TimeSeriesView::new("faults, mode, model, viz drops")
                .with_contents([
                    "/faults/count",
                    "/mode/driving",
                    "/model/version",
                    "/viz/dropped",
                ])
                .into(),
        ])
        .with_name("timing & link")
        .into(),
        Vertical::new([series("episode", "/episode"), series("training", "/train")])
            .with_name("episodes & training")
            .into(),
    ]);
    Blueprint::new(Horizontal::new([left.into(), right.into()]))
}
