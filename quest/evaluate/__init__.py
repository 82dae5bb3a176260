"""quest-eval: trained runs on imperfect devices (issue 12): chips programmed with the card's
non-idealities (quest.device.chip), tested, summarised over chips."""
