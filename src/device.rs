//! What a registration is: a push provider, its token, and the device's settings.

use serde::{Deserialize, Serialize};

/// Push services a device token can belong to. VoIP providers are PushKit (iOS calls).
/// Stored as its name ([`Provider::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// By hand rather than derived: the same strings, with one visitor instead of serde's enum
/// machinery.
impl Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NAMES: [&str; 5] = ["gcm", "apns", "apns_internal", "apns_voip", "apns_internal_voip"];
        let name = String::deserialize(deserializer)?;
        Provider::parse(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, &NAMES))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_stored_by_name() {
        for p in Provider::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Provider>(&json).unwrap(), p);
            assert_eq!(crate::json::from_slice::<Provider>(json.as_bytes()).unwrap(), p);
        }
        let err = serde_json::from_str::<Provider>("\"fax\"").unwrap_err().to_string();
        assert!(err.starts_with("unknown variant `fax`, expected one of `gcm`, `apns`, `apns_internal`, `apns_voip`, `apns_internal_voip`"), "{err}");
        assert!(serde_json::from_str::<Provider>("1").is_err());
        assert!(crate::json::from_slice::<Provider>(b"{\"gcm\": null}").is_err());
    }
}
