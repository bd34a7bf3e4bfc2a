"""Outbound mail: what a sending request may hold (`limits`), how it is read and checked
(`request`), and how it becomes the RFC 5322 bytes that leave the service (`compose`).

Framework-free: the JSON API, the SMTP submission listener and the delivery workers all call it,
so each rule about outbound mail lives here once.
"""
