"""Bulk import of an existing book: customers, contacts, invoices, payments, promises, disputes and
instalment plans from CSV or XLSX files (docs/import.md)."""
