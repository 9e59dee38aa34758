"""Onboarding files for `lottrace import`: their formats (`formats`), reading CSV and XLSX
(`readers`), checking each row with a precise reason per column (`validation`), the rejected
rows (`rejects`), and sending the good rows to the platform in batches (`upload`)."""
