//! The D-Bus contracts between BunkerOS services: where each service is found on the system bus.
//!
//! Services never depend on each other's crates; they meet here. Each service's interface
//! definitions (`#[zbus::proxy]` traits for its clients, the shared types they carry) will be
//! added beside its address below as that service is built, so a change to a contract is one
//! reviewed change in one file. Names follow systemd's convention (`org.freedesktop.resolve1`):
//! a versioned name, and an object path spelled the same way.

/// Where a service lives on the system bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusService {
    /// The daemon that owns the name, e.g. `trustd`.
    pub daemon: &'static str,
    /// Its well-known bus name, e.g. `org.bunkeros.Trust1`.
    pub bus_name: &'static str,
    /// Its main object path, e.g. `/org/bunkeros/Trust1`.
    pub object_path: &'static str,
}

/// `trustd`: the site's certificate authority.
pub const TRUST: BusService = BusService {
    daemon: "trustd",
    bus_name: "org.bunkeros.Trust1",
    object_path: "/org/bunkeros/Trust1",
};

/// `hubd`: secure hub routing between sites.
pub const HUB: BusService = BusService {
    daemon: "hubd",
    bus_name: "org.bunkeros.Hub1",
    object_path: "/org/bunkeros/Hub1",
};

/// `minerd`: mining orchestration.
pub const MINING: BusService = BusService {
    daemon: "minerd",
    bus_name: "org.bunkeros.Mining1",
    object_path: "/org/bunkeros/Mining1",
};

/// `sited`: EMP-site monitoring.
pub const SITE: BusService = BusService {
    daemon: "sited",
    bus_name: "org.bunkeros.Site1",
    object_path: "/org/bunkeros/Site1",
};

/// `updated`: signed A/B image updates.
pub const UPDATE: BusService = BusService {
    daemon: "updated",
    bus_name: "org.bunkeros.Update1",
    object_path: "/org/bunkeros/Update1",
};

/// Every BunkerOS service on the bus, in the order of the design's service table.
pub const ALL: [BusService; 5] = [TRUST, HUB, MINING, SITE, UPDATE];

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::names::WellKnownName;
    use zbus::zvariant::ObjectPath;

    #[test]
    fn every_name_and_path_is_valid_on_the_bus() {
        for service in ALL {
            WellKnownName::try_from(service.bus_name).expect(service.bus_name);
            ObjectPath::try_from(service.object_path).expect(service.object_path);
        }
    }

    #[test]
    fn each_path_spells_its_name() {
        for service in ALL {
            let spelled = format!("/{}", service.bus_name.replace('.', "/"));
            assert_eq!(service.object_path, spelled, "{}", service.daemon);
        }
    }

    #[test]
    fn names_and_daemons_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.bus_name, b.bus_name);
                assert_ne!(a.daemon, b.daemon);
            }
        }
    }
}
