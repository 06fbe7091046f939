//! What a registration is: a push provider, its token, and the device's settings.

use serde::{Deserialize, Serialize};

/// Push services a device token can belong to. VoIP providers are PushKit (iOS calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Gcm,
    Apns,
    ApnsInternal,
    ApnsVoip,
    ApnsInternalVoip,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Gcm,
        Provider::Apns,
        Provider::ApnsInternal,
        Provider::ApnsVoip,
        Provider::ApnsInternalVoip,
    ];
    pub const VOIP: [Provider; 2] = [Provider::ApnsVoip, Provider::ApnsInternalVoip];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Gcm => "gcm",
            Provider::Apns => "apns",
            Provider::ApnsInternal => "apns_internal",
            Provider::ApnsVoip => "apns_voip",
            Provider::ApnsInternalVoip => "apns_internal_voip",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// APNs tokens (PushKit included) are hex strings; FCM tokens are opaque.
    pub fn is_apple(self) -> bool {
        !matches!(self, Provider::Gcm)
    }
}

/// The default `bundle_id`, as the API documents it.
pub const DEFAULT_BUNDLE_ID: &str = "com.discord";

/// A device's registration under one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub provider: Provider,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voip: Option<VoipToken>,
    #[serde(default)]
    pub bypass_server_throttling_supported: bool,
    pub bundle_id: String,
    /// Unix milliseconds of the last registration; drives cap eviction and expiry.
    pub registered_at: u64,
}

/// A PushKit token riding along with a device's regular token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoipToken {
    pub provider: Provider,
    pub token: String,
}

impl Device {
    pub fn is(&self, provider: Provider, token: &str) -> bool {
        self.provider == provider && self.token == token
    }

    /// Every (provider, token) this device can be reached by, each indexed on its own.
    pub fn push_tokens(&self) -> impl Iterator<Item = (Provider, &str)> {
        std::iter::once((self.provider, self.token.as_str()))
            .chain(self.voip.iter().map(|v| (v.provider, v.token.as_str())))
    }
}

/// Why a push sender drops a token: what Apple or Google answered, or an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationReason {
    /// APNs 410 `Unregistered`, FCM `UNREGISTERED`.
    Unregistered,
    /// APNs 400 `BadDeviceToken`.
    BadDeviceToken,
    /// APNs 400 `DeviceTokenNotForTopic`.
    DeviceTokenNotForTopic,
    /// FCM `SENDER_ID_MISMATCH`.
    SenderIdMismatch,
    Manual,
}

impl InvalidationReason {
    pub const ALL: [InvalidationReason; 5] = [
        InvalidationReason::Unregistered,
        InvalidationReason::BadDeviceToken,
        InvalidationReason::DeviceTokenNotForTopic,
        InvalidationReason::SenderIdMismatch,
        InvalidationReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationReason::Unregistered => "unregistered",
            InvalidationReason::BadDeviceToken => "bad_device_token",
            InvalidationReason::DeviceTokenNotForTopic => "device_token_not_for_topic",
            InvalidationReason::SenderIdMismatch => "sender_id_mismatch",
            InvalidationReason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<InvalidationReason> {
        InvalidationReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}
