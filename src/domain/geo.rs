//! Coordinates: datum conversion and the rough "is this near the district"
//! check.
//!
//! WeChat's location picker and most map SDKs in mainland China return
//! GCJ-02, a deliberately perturbed datum; stored coordinates are always
//! WGS-84, so that they can be compared with survey data and with each other.

use super::error::FieldViolation;

/// Semi-major axis of the Krasovsky 1940 ellipsoid, on which GCJ-02 is defined.
const KRASOVSKY_A: f64 = 6_378_245.0;
/// First eccentricity squared of the Krasovsky 1940 ellipsoid.
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
const EARTH_MEAN_RADIUS_KM: f64 = 6_371.008_8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum {
    Wgs84,
    Gcj02,
}

/// A point in WGS-84 degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

impl GeoPoint {
    /// Parses a coordinate pair in the given datum and converts it to WGS-84.
    pub fn parse(
        field: &str,
        latitude: f64,
        longitude: f64,
        datum: Datum,
    ) -> Result<GeoPoint, FieldViolation> {
        let in_range = latitude.is_finite()
            && longitude.is_finite()
            && (-90.0..=90.0).contains(&latitude)
            && (-180.0..=180.0).contains(&longitude);
        if !in_range {
            return Err(FieldViolation::new(
                field,
                "latitude must be within [-90, 90] and longitude within [-180, 180]",
            ));
        }

        let point = GeoPoint {
            latitude,
            longitude,
        };
        Ok(match datum {
            Datum::Wgs84 => point,
            Datum::Gcj02 => gcj02_to_wgs84(point),
        })
    }

    /// Great-circle distance in kilometres (haversine formula).
    /// The south-west and north-east corners of a box that holds every
    /// point within `radius_km` (a little more, away from the equator).
    pub fn surrounding_box(self, radius_km: f64) -> (GeoPoint, GeoPoint) {
        let d_lat = (radius_km / EARTH_MEAN_RADIUS_KM).to_degrees();
        let cos = self.latitude.to_radians().cos().max(0.01);
        let d_lon = d_lat / cos;
        (
            GeoPoint {
                latitude: self.latitude - d_lat,
                longitude: self.longitude - d_lon,
            },
            GeoPoint {
                latitude: self.latitude + d_lat,
                longitude: self.longitude + d_lon,
            },
        )
    }

    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.longitude - self.longitude).to_radians();

        let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_MEAN_RADIUS_KM * h.sqrt().asin()
    }
}

/// The area the district serves, as a centre and a generous radius.
///
/// This is a sanity check against swapped or garbage coordinates, not a
/// boundary test: a complaint about a road on the district's edge must never
/// be refused because of a few hundred metres.
#[derive(Debug, Clone, Copy)]
pub struct ServiceArea {
    pub centre: GeoPoint,
    pub radius_km: f64,
}

impl ServiceArea {
    pub fn check(&self, field: &str, point: GeoPoint) -> Result<(), FieldViolation> {
        let distance = self.centre.distance_km(point);
        if distance <= self.radius_km {
            return Ok(());
        }
        Err(FieldViolation::new(
            field,
            format!(
                "the point is {distance:.0} km from the district centre; \
                 only places within {:.0} km are accepted",
                self.radius_km
            ),
        ))
    }
}

/// Converts a WGS-84 point to GCJ-02 with the published transform.
pub fn wgs84_to_gcj02(point: GeoPoint) -> GeoPoint {
    let (d_lat, d_lon) = gcj02_offset(point);
    GeoPoint {
        latitude: point.latitude + d_lat,
        longitude: point.longitude + d_lon,
    }
}

/// Converts a GCJ-02 point back to WGS-84.
///
/// The transform has no closed-form inverse; a fixed-point iteration on the
/// forward transform converges to well under a millimetre in a few steps.
pub fn gcj02_to_wgs84(gcj: GeoPoint) -> GeoPoint {
    let mut wgs = gcj;
    for _ in 0..10 {
        let forward = wgs84_to_gcj02(wgs);
        let (err_lat, err_lon) = (
            forward.latitude - gcj.latitude,
            forward.longitude - gcj.longitude,
        );
        wgs.latitude -= err_lat;
        wgs.longitude -= err_lon;
        if err_lat.abs() < 1e-10 && err_lon.abs() < 1e-10 {
            break;
        }
    }
    wgs
}

/// The (latitude, longitude) shift in degrees that GCJ-02 adds at a point.
fn gcj02_offset(point: GeoPoint) -> (f64, f64) {
    use std::f64::consts::PI;

    let x = point.longitude - 105.0;
    let y = point.latitude - 35.0;
    let d_lat_m = shift_latitude(x, y);
    let d_lon_m = shift_longitude(x, y);

    let rad_lat = point.latitude.to_radians();
    let w = 1.0 - KRASOVSKY_EE * rad_lat.sin().powi(2);
    let sqrt_w = w.sqrt();
    let meridian_radius = KRASOVSKY_A * (1.0 - KRASOVSKY_EE) / (w * sqrt_w);
    let parallel_radius = KRASOVSKY_A / sqrt_w * rad_lat.cos();

    (
        d_lat_m * 180.0 / (meridian_radius * PI),
        d_lon_m * 180.0 / (parallel_radius * PI),
    )
}

/// Periodic terms shared by both shift polynomials.
fn ripple(x: f64) -> f64 {
    use std::f64::consts::PI;
    (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0
}

fn shift_latitude(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let polynomial = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    let waves = (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0
        + (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    polynomial + ripple(x) + waves
}

fn shift_longitude(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let polynomial = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    let waves = (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0
        + (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    polynomial + ripple(x) + waves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surrounding_box_holds_the_circle_and_little_more() {
        let (south_west, north_east) = PINGSHAN_CENTRE.surrounding_box(0.15);
        let north = GeoPoint {
            latitude: north_east.latitude,
            ..PINGSHAN_CENTRE
        };
        let east = GeoPoint {
            longitude: north_east.longitude,
            ..PINGSHAN_CENTRE
        };
        let south_west_edge = GeoPoint {
            latitude: south_west.latitude,
            ..PINGSHAN_CENTRE
        };

        for edge in [north, east, south_west_edge] {
            let km = PINGSHAN_CENTRE.distance_km(edge);
            assert!((0.149..0.151).contains(&km), "{km}");
        }
    }

    const PINGSHAN_CENTRE: GeoPoint = GeoPoint {
        latitude: 22.693572,
        longitude: 114.3414,
    };

    #[test]
    fn gcj02_shift_in_shenzhen_is_a_few_hundred_metres() {
        let shifted = wgs84_to_gcj02(PINGSHAN_CENTRE);
        let metres = PINGSHAN_CENTRE.distance_km(shifted) * 1000.0;
        assert!((200.0..800.0).contains(&metres), "shift was {metres} m");
        // In Shenzhen the datum moves points south-east.
        assert!(shifted.latitude < PINGSHAN_CENTRE.latitude);
        assert!(shifted.longitude > PINGSHAN_CENTRE.longitude);
    }

    #[test]
    fn converting_to_gcj02_and_back_returns_the_same_point() {
        for (lat, lon) in [
            (22.69, 114.34),
            (22.75, 114.40),
            (39.90, 116.40),
            (31.23, 121.47),
        ] {
            let wgs = GeoPoint {
                latitude: lat,
                longitude: lon,
            };
            let back = gcj02_to_wgs84(wgs84_to_gcj02(wgs));
            assert!(
                wgs.distance_km(back) < 1e-6,
                "{wgs:?} came back as {back:?}"
            );
        }
    }

    #[test]
    fn parse_converts_gcj02_input_to_wgs84() {
        let gcj = wgs84_to_gcj02(PINGSHAN_CENTRE);
        let parsed = GeoPoint::parse("c", gcj.latitude, gcj.longitude, Datum::Gcj02).unwrap();
        assert!(parsed.distance_km(PINGSHAN_CENTRE) < 1e-6);
    }

    #[test]
    fn parse_rejects_out_of_range_and_non_finite_values() {
        assert!(GeoPoint::parse("c", 91.0, 114.0, Datum::Wgs84).is_err());
        assert!(GeoPoint::parse("c", 22.0, 181.0, Datum::Wgs84).is_err());
        assert!(GeoPoint::parse("c", f64::NAN, 114.0, Datum::Wgs84).is_err());
    }

    #[test]
    fn the_service_area_accepts_the_edge_and_refuses_another_city() {
        let area = ServiceArea {
            centre: PINGSHAN_CENTRE,
            radius_km: 25.0,
        };
        let kengzi = GeoPoint {
            latitude: 22.7618,
            longitude: 114.4219,
        };
        let beijing = GeoPoint {
            latitude: 39.90,
            longitude: 116.40,
        };
        assert!(area.check("c", kengzi).is_ok());
        let refused = area.check("c", beijing).unwrap_err();
        assert!(refused.reason.contains("km from the district centre"));
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // One degree of latitude is about 111.2 km on the mean sphere.
        let a = GeoPoint {
            latitude: 22.0,
            longitude: 114.0,
        };
        let b = GeoPoint {
            latitude: 23.0,
            longitude: 114.0,
        };
        assert!((a.distance_km(b) - 111.19).abs() < 0.05);
    }
}
