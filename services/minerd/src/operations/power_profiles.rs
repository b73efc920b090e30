//! LuxOS power profiles: the named operating points a LuxOS miner runs at (`profiles` lists
//! them with their watts, `config` names the running one, `profileset` switches). A power
//! target, for an operator or for curtailment, becomes one of them.

use std::net::SocketAddr;

use super::miner_action::{ActionError, send};
use crate::cgminer::{ClientConfig, Command, Section};

/// One profile: its name as `profileset` takes it, and the power it draws.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerProfile {
    pub name: String,
    pub watts: f64,
}

/// A miner's profiles, lowest power first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerProfiles(Vec<PowerProfile>);

impl PowerProfiles {
    /// Asks the miner (`profiles`, read-only).
    pub async fn read(
        api: SocketAddr,
        client: &ClientConfig,
    ) -> Result<PowerProfiles, ActionError> {
        let reply = send(api, client, Command::Profiles).await?;
        let profiles = PowerProfiles::from_section(reply.section(Command::Profiles.name())?);
        if profiles.0.is_empty() {
            return Err(ActionError::NotVerified {
                reason: "the miner lists no power profiles".to_owned(),
            });
        }
        Ok(profiles)
    }

    /// The `PROFILES` records; a record without a name or a positive wattage is skipped.
    pub fn from_section(section: &Section) -> PowerProfiles {
        let mut profiles: Vec<PowerProfile> = section
            .records("PROFILES")
            .iter()
            .filter_map(|r| {
                let name = r.get("Profile Name")?.as_str()?.to_owned();
                let watts = r
                    .get("Watts")?
                    .as_f64()
                    .filter(|w| w.is_finite() && *w > 0.0)?;
                Some(PowerProfile { name, watts })
            })
            .collect();
        profiles.sort_by(|a, b| a.watts.total_cmp(&b.watts));
        PowerProfiles(profiles)
    }

    pub fn new(mut profiles: Vec<PowerProfile>) -> PowerProfiles {
        profiles.retain(|p| p.watts.is_finite() && p.watts > 0.0);
        profiles.sort_by(|a, b| a.watts.total_cmp(&b.watts));
        PowerProfiles(profiles)
    }

    /// The highest profile at or below `watts`, else the lowest (a target under every
    /// profile still draws as little as the miner can while hashing).
    pub fn for_target(&self, watts: f64) -> Option<&PowerProfile> {
        self.0
            .iter()
            .rev()
            .find(|p| p.watts <= watts)
            .or_else(|| self.lowest())
    }

    pub fn named(&self, name: &str) -> Option<&PowerProfile> {
        self.0.iter().find(|p| p.name == name)
    }

    pub fn lowest(&self) -> Option<&PowerProfile> {
        self.0.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> PowerProfiles {
        PowerProfiles::new(
            [
                ("default", 3250.0),
                ("-1", 2990.0),
                ("-2", 2730.0),
                ("+1", 3510.0),
            ]
            .into_iter()
            .map(|(name, watts)| PowerProfile {
                name: name.to_owned(),
                watts,
            })
            .collect(),
        )
    }

    #[test]
    fn a_target_takes_the_highest_profile_at_or_below_it() {
        let p = profiles();
        assert_eq!(p.for_target(3000.0).unwrap().name, "-1");
        assert_eq!(p.for_target(3250.0).unwrap().name, "default");
        assert_eq!(p.for_target(9999.0).unwrap().name, "+1");
    }

    #[test]
    fn a_target_under_every_profile_takes_the_lowest() {
        let p = profiles();
        assert_eq!(p.for_target(100.0).unwrap().name, "-2");
        assert_eq!(p.lowest().unwrap().watts, 2730.0);
        assert!(PowerProfiles::default().for_target(3000.0).is_none());
    }

    #[test]
    fn unusable_wattages_are_left_out() {
        let p = PowerProfiles::new(vec![
            PowerProfile {
                name: "broken".into(),
                watts: f64::NAN,
            },
            PowerProfile {
                name: "zero".into(),
                watts: 0.0,
            },
        ]);
        assert!(p.lowest().is_none());
        assert!(p.named("zero").is_none());
    }
}
