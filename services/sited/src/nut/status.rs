//! `ups.status`: the space-separated flags a NUT driver reports (`"OB DISCHRG LB"`), as a typed
//! set. Flags this list does not know (drivers add some, e.g. `HE`, `ECO`) are kept by name and
//! never make the status unreadable.

use std::collections::BTreeSet;

/// One `ups.status` flag (NUT `docs/new-drivers.txt`, "Status data").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `OL`: on line (mains power).
    Online,
    /// `OB`: on battery.
    OnBattery,
    /// `LB`: low battery; shutdown is near.
    LowBattery,
    /// `HB`: high battery.
    HighBattery,
    /// `RB`: the battery needs replacing.
    ReplaceBattery,
    /// `CHRG`: charging.
    Charging,
    /// `DISCHRG`: discharging.
    Discharging,
    /// `BYPASS`: on bypass, the load is not protected.
    Bypass,
    /// `CAL`: calibrating (runtime calibration).
    Calibrating,
    /// `OFF`: output off.
    Off,
    /// `OVER`: overloaded.
    Overload,
    /// `TRIM`: trimming incoming voltage.
    Trim,
    /// `BOOST`: boosting incoming voltage.
    Boost,
    /// `FSD`: forced shutdown in progress.
    ForcedShutdown,
    /// `ALARM`: the UPS raises an alarm (`ups.alarm` says which).
    Alarm,
    /// `WAIT`: upsd has no status from the driver yet (the first second after it starts).
    Wait,
}

const FLAGS: [(&str, Flag); 16] = [
    ("OL", Flag::Online),
    ("OB", Flag::OnBattery),
    ("LB", Flag::LowBattery),
    ("HB", Flag::HighBattery),
    ("RB", Flag::ReplaceBattery),
    ("CHRG", Flag::Charging),
    ("DISCHRG", Flag::Discharging),
    ("BYPASS", Flag::Bypass),
    ("CAL", Flag::Calibrating),
    ("OFF", Flag::Off),
    ("OVER", Flag::Overload),
    ("TRIM", Flag::Trim),
    ("BOOST", Flag::Boost),
    ("FSD", Flag::ForcedShutdown),
    ("ALARM", Flag::Alarm),
    ("WAIT", Flag::Wait),
];

impl Flag {
    /// The flag as NUT spells it.
    pub fn as_str(self) -> &'static str {
        FLAGS
            .iter()
            .find(|(_, flag)| *flag == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    fn from_word(word: &str) -> Option<Flag> {
        FLAGS
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, flag)| *flag)
    }
}

/// A parsed `ups.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsStatus {
    flags: BTreeSet<Flag>,
    unknown: BTreeSet<String>,
}

impl UpsStatus {
    /// Reads the flags from the variable's value. Words are separated by spaces; repeated flags
    /// count once.
    pub fn parse(value: &str) -> UpsStatus {
        let mut status = UpsStatus::default();
        for word in value.split_ascii_whitespace() {
            match Flag::from_word(word) {
                Some(flag) => {
                    status.flags.insert(flag);
                }
                None => {
                    status.unknown.insert(word.to_owned());
                }
            }
        }
        status
    }

    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// The known flags, in a fixed order.
    pub fn flags(&self) -> impl Iterator<Item = Flag> + '_ {
        self.flags.iter().copied()
    }

    /// Flags this parser does not know, as reported.
    pub fn unknown(&self) -> impl Iterator<Item = &str> + '_ {
        self.unknown.iter().map(String::as_str)
    }

    /// upsd is still waiting for the driver's first status: nothing here says the UPS is
    /// offline, on battery or anything else.
    pub fn is_waiting(&self) -> bool {
        self.has(Flag::Wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_in_any_order_and_unknown_ones_are_kept() {
        let status = UpsStatus::parse("OB DISCHRG  LB ECO OB");
        assert!(status.has(Flag::OnBattery));
        assert!(status.has(Flag::Discharging));
        assert!(status.has(Flag::LowBattery));
        assert!(!status.has(Flag::Online));
        assert_eq!(
            status.flags().collect::<Vec<_>>(),
            [Flag::OnBattery, Flag::LowBattery, Flag::Discharging]
        );
        assert_eq!(status.unknown().collect::<Vec<_>>(), ["ECO"]);
    }

    #[test]
    fn every_flag_round_trips_through_its_name() {
        for (name, flag) in FLAGS {
            assert_eq!(flag.as_str(), name);
            assert_eq!(UpsStatus::parse(name).flags().collect::<Vec<_>>(), [flag]);
        }
    }

    #[test]
    fn wait_and_empty_status() {
        assert!(UpsStatus::parse("WAIT").is_waiting());
        assert!(!UpsStatus::parse("OL").is_waiting());
        let empty = UpsStatus::parse("");
        assert_eq!(empty.flags().count(), 0);
        assert_eq!(empty.unknown().count(), 0);
    }

    #[test]
    fn flags_are_case_sensitive_as_nut_sends_them() {
        let status = UpsStatus::parse("ol");
        assert!(!status.has(Flag::Online));
        assert_eq!(status.unknown().collect::<Vec<_>>(), ["ol"]);
    }
}
