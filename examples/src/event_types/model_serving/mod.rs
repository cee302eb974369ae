//! Model serving events: inference endpoints and the routes (sessions) behind them.

use event_core::prelude::*;
use serde::{Deserialize, Serialize};

use super::common::ResourceSlots;

/// Health of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStatus {
    /// Its session is being created.
    Provisioning,
    /// Passes health checks and takes traffic.
    Healthy,
    /// Fails health checks; takes no traffic.
    Unhealthy,
    /// Being removed.
    Terminating,
}

/// Where an endpoint sends a share of its traffic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteTarget {
    /// Route id.
    pub route_id: String,
    /// Session serving it.
    pub session_id: String,
    /// Address of the model server (`10.0.1.21:30012`).
    pub address: String,
    /// Share of the traffic, between 0 and 1.
    pub traffic_ratio: f32,
}

/// Create one more route (an inference session) for an endpoint; one manager instance does it.
#[anycast_event(domain = "model_serving")]
#[derive(Debug, Clone)]
pub struct RouteCreationRequestedEvent {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Route id.
    pub route_id: String,
    /// Folder holding the model.
    pub model_vfolder_id: String,
    /// Serving image.
    pub image: String,
    /// Resources per replica.
    pub resource_slots: ResourceSlots,
}

/// A route's health changed.
#[broadcast_event(domain = "model_serving")]
#[derive(Debug, Clone)]
pub struct RouteStatusChangedEvent {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Route id.
    pub route_id: String,
    /// Session serving it, once created.
    pub session_id: Option<String>,
    /// New status.
    pub status: RouteStatus,
    /// When, in unix milliseconds.
    pub changed_at_ms: u64,
}

/// The routing table of an endpoint changed; every app proxy instance reloads it.
#[broadcast_event(domain = "model_serving")]
#[derive(Debug, Clone)]
pub struct EndpointRoutesUpdatedEvent {
    /// Endpoint id.
    pub endpoint_id: String,
    /// The healthy routes and their traffic shares.
    pub routes: Vec<RouteTarget>,
}

/// Change the number of replicas of an endpoint; one manager instance adds or removes routes.
#[anycast_event(domain = "model_serving")]
#[derive(Debug, Clone)]
pub struct EndpointScaleRequestedEvent {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Replicas wanted.
    pub desired_replicas: u32,
    /// Replicas now.
    pub current_replicas: u32,
    /// Who asked (a user, or `autoscaler`).
    pub requested_by: String,
}
