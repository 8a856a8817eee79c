"""creditctl's service: Flask API, SQLAlchemy ledger, decision trail — adapters around engine/."""
