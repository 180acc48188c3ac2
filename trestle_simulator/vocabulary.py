# ruff: noqa: RUF001 - typographic quotes in sample text are the point
"""Word lists the generator draws from: places, people, remarks.

Some entries carry non-ASCII characters, typographic quotes, apostrophes and ampersands
on purpose: real MLS text does, and a pipeline must store them without mangling.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    city: str
    state: str  # a StateOrProvince member name
    county: str
    postal_codes: tuple[str, ...]
    latitude: float
    longitude: float
    price_level: int  # median list price, dollars
    area_code: str


PLACES: tuple[Place, ...] = (
    Place(
        "Austin",
        "TX",
        "Travis",
        ("78701", "78704", "78745", "78751"),
        30.2672,
        -97.7431,
        560_000,
        "512",
    ),
    Place(
        "Houston",
        "TX",
        "Harris",
        ("77002", "77006", "77019", "77098"),
        29.7604,
        -95.3698,
        340_000,
        "713",
    ),
    Place(
        "Phoenix", "AZ", "Maricopa", ("85004", "85016", "85018"), 33.4484, -112.0740, 430_000, "602"
    ),
    Place(
        "San Diego",
        "CA",
        "San Diego",
        ("92101", "92103", "92109", "92117"),
        32.7157,
        -117.1611,
        950_000,
        "619",
    ),
    Place(
        "Sacramento",
        "CA",
        "Sacramento",
        ("95814", "95816", "95818"),
        38.5816,
        -121.4944,
        520_000,
        "916",
    ),
    Place(
        "Denver",
        "CO",
        "Denver",
        ("80202", "80205", "80210", "80218"),
        39.7392,
        -104.9903,
        610_000,
        "303",
    ),
    Place("Cañon City", "CO", "Fremont", ("81212", "81215"), 38.4410, -105.2425, 330_000, "719"),
    Place(
        "Tampa",
        "FL",
        "Hillsborough",
        ("33602", "33606", "33609"),
        27.9506,
        -82.4572,
        410_000,
        "813",
    ),
    Place(
        "Coral Gables",
        "FL",
        "Miami-Dade",
        ("33134", "33143", "33146"),
        25.7215,
        -80.2684,
        1_350_000,
        "305",
    ),
    Place(
        "Atlanta",
        "GA",
        "Fulton",
        ("30303", "30306", "30308", "30318"),
        33.7490,
        -84.3880,
        420_000,
        "404",
    ),
    Place(
        "Chicago",
        "IL",
        "Cook",
        ("60601", "60614", "60622", "60657"),
        41.8781,
        -87.6298,
        380_000,
        "312",
    ),
    Place(
        "Boston",
        "MA",
        "Suffolk",
        ("02108", "02116", "02118", "02127"),
        42.3601,
        -71.0589,
        890_000,
        "617",
    ),
    Place("Raleigh", "NC", "Wake", ("27601", "27603", "27608"), 35.7796, -78.6382, 450_000, "919"),
    Place("Spokane", "WA", "Spokane", ("99201", "99203"), 47.6588, -117.4260, 390_000, "509"),
    Place(
        "Seattle",
        "WA",
        "King",
        ("98101", "98103", "98107", "98115"),
        47.6062,
        -122.3321,
        870_000,
        "206",
    ),
    Place(
        "Portland",
        "OR",
        "Multnomah",
        ("97201", "97209", "97214", "97232"),
        45.5152,
        -122.6784,
        540_000,
        "503",
    ),
    Place("Buffalo", "NY", "Erie", ("14201", "14213", "14216"), 42.8864, -78.8784, 240_000, "716"),
)

STREET_NAMES = (
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Pine",
    "Willow",
    "Lakeview",
    "Sunset",
    "Highland",
    "Peña",
    "Montaña",
    "O'Connor",
    "Ridgecrest",
    "Riverside",
    "Magnolia",
    "Bluebonnet",
    "Hawthorne",
    "Juniper",
    "Aspen",
    "Saint-Laurent",
)
STREET_SUFFIXES = ("St", "Ave", "Blvd", "Dr", "Ln", "Ct", "Way", "Pl", "Rd", "Ter")

FIRST_NAMES = (
    "Ana",
    "José",
    "Chloé",
    "Zoë",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Mateo",
    "Sofía",
    "Wei",
    "Priya",
    "Björn",
    "Aoife",
    "Kwame",
    "Renée",
    "Marcus",
    "Hannah",
    "Dmitri",
    "Léa",
)
LAST_NAMES = (
    "García",
    "Smith",
    "O'Brien",
    "Nguyen",
    "Müller",
    "Johnson",
    "Núñez",
    "Kowalski",
    "Patel",
    "Williams",
    "Dubois",
    "Kim",
    "Rossi",
    "Okafor",
    "Brown",
    "Lefèvre",
    "Anderson",
    "Fernández",
    "Schäfer",
    "Taylor",
)
OFFICE_WORDS = (
    "Realty",
    "Properties",
    "Homes",
    "Real Estate",
    "Group",
    "Partners",
    "Brokers",
    "Sotheby’s International Realty",
    "& Associates",
    "Collective",
)
OFFICE_BRANDS = (
    "Sunrise",
    "Keystone",
    "Bluebird",
    "Summit",
    "Harbor & Hill",
    "Casa Buena",
    "Evergreen",
    "Lone Star",
    "Peachtree",
    "Cascade",
    "Golden Gate",
    "Liberty",
)
SUBDIVISIONS = (
    "Barton Hills",
    "Las Colinas",
    "The Villages at Peñasco",
    "Maple Grove",
    "Heritage Oaks",
    "Riverbend",
    "St. Andrews",
    "Fox & Hound Estates",
    "Willowbrook",
    "Cielo Vista",
)
SCHOOLS = (
    "Lincoln",
    "Roosevelt",
    "César Chávez",
    "Washington",
    "Jefferson",
    "Ridgeview",
    "Mountain View",
    "Lakeside",
    "Oak Hill",
    "St. Mary’s",
)

REMARK_SENTENCES = (
    "Welcome home to this light-filled retreat in a quiet, tree-lined neighborhood.",
    "The chef’s kitchen features quartz counters, a 6-burner range & a walk-in pantry.",
    "Enjoy morning café con leche on the covered patio overlooking the garden.",
    "Owner’s suite with spa-like bath, soaking tub and dual “his & hers” closets.",
    "Freshly painted, new LVP flooring & updated fixtures throughout.",
    "Minutes to downtown, top-rated schools, parks and the farmers’ market.",
    "Piñata-ready backyard with mature shade trees and plenty of room to play.",
    "Bring your résumé of ideas: bonus room works as an office, gym or atelier.",
    "HOA covers landscaping, pool & clubhouse access — truly lock-and-leave living.",
    "Seller is offering a 2-1 rate buydown with an acceptable offer!",
    "Ask about the “Smart Home” package: thermostat, locks & doorbell camera.",
    "Vaulted ceilings, oversized windows and an open floor plan make entertaining easy.",
    "Detached studio/ADU with separate entrance — great for guests or rental income.",
    "Solar panels (owned, not leased) keep utility bills low year-round.",
    "Don’t miss the 3-car garage with EV charger & built-in storage.",
    "Nestled on a cul-de-sac near the greenbelt; walk to Peña Park & the café district.",
    "Recent upgrades: roof (2021), HVAC (2022) and water heater (2023).",
    "Sold “as-is”; buyer to verify schools, square footage & HOA details.",
    "Light & bright end unit with southern exposure and a Juliet balcony.",
    "Über-convenient location near transit, shops and restaurants.",
)
EMOJI = ("🏡", "✨", "🌳", "☀️", "🔑")

MEDIA_DESCRIPTIONS = (
    "Front exterior",
    "Living room",
    "Kitchen",
    "Dining area",
    "Primary bedroom",
    "Primary bath",
    "Backyard",
    "Aerial view",
    "Garage",
    "Community pool",
    "Floor plan",
)
OPEN_HOUSE_REMARKS = (
    "Join us Sunday for coffee & pastries!",
    "Open house — masks optional, smiles required.",
    "Come see the newly renovated kitchen.",
    "Broker preview; lunch provided by Peña Title & Escrow.",
)
REFRESHMENTS = ("Coffee & donuts", "Lemonade", "Pastries", "Tacos al pastor", "None")

# Filler for fill="max": mixed ASCII and two/three-byte characters, quotes and ampersands,
# all in the Basic Multilingual Plane so characters = code points = UTF-16 units.
MAX_FILLER = "Très “grand” & ñandú’s <maison> — "

GENERIC_WORDS = (
    "north",
    "south",
    "garden",
    "view",
    "corner",
    "unit",
    "access",
    "private",
    "shared",
    "update",
    "pending",
    "see remarks",
    "per seller",
    "approx.",
    "café",
    "niño",
    "façade",
    "& more",
    "“as is”",
    "O'Neil",
)
