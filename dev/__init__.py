"""The development runner (`make run`) and the embedded services it shares with the tests."""
